#include "userns.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace ns {

static bool WriteProcFile(pid_t pid, const char* name, const char* content, Failure* f) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/%s", static_cast<int>(pid), name);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return Fail(f, name, "open", errno, path);
  size_t len = strlen(content);
  ssize_t n = write(fd, content, len);
  int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(len)) return Fail(f, name, "write", n < 0 ? err : EIO, content);
  return true;
}

bool WriteIdMapsFromParent(pid_t child, uid_t uid, uid_t outerUid, gid_t gid, gid_t outerGid, Failure* f) {
  char line[64];
  snprintf(line, sizeof line, "%u %u 1\n", static_cast<unsigned>(uid), static_cast<unsigned>(outerUid));
  RETURN_ON_FAILURE(WriteProcFile(child, "uid_map", line, f));
  RETURN_ON_FAILURE(WriteProcFile(child, "setgroups", "deny", f));
  snprintf(line, sizeof line, "%u %u 1\n", static_cast<unsigned>(gid), static_cast<unsigned>(outerGid));
  RETURN_ON_FAILURE(WriteProcFile(child, "gid_map", line, f));
  return true;
}

}  // namespace ns
