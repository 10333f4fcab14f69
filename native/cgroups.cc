#include "cgroups.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace ns {

static bool WriteFile(const std::string& path, const std::string& value, Failure* f, const char* step) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return Fail(f, step, "open", errno, path.c_str());
  ssize_t n = write(fd, value.data(), value.size());
  int e = errno;
  close(fd);
  if (n != static_cast<ssize_t>(value.size())) return Fail(f, step, "write", n < 0 ? e : EIO, path.c_str());
  return true;
}

bool JoinCgroupsFromParent(const CgroupPlan& plan, pid_t child, Failure* f) {
  for (const std::string& dir : plan.dirs) {
    if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return Fail(f, "cgroup", "mkdir", errno, dir.c_str());
  }
  for (const auto& w : plan.writes) RETURN_ON_FAILURE(WriteFile(w.first, w.second, f, "cgroup limit"));
  char pid[16];
  snprintf(pid, sizeof pid, "%d", static_cast<int>(child));
  for (const std::string& procs : plan.procs) RETURN_ON_FAILURE(WriteFile(procs, pid, f, "join cgroup"));
  return true;
}

std::vector<std::string> ReadCgroupStats(const CgroupPlan& plan) {
  std::vector<std::string> out;
  for (const std::string& path : plan.stats) {
    char buf[4096];
    ssize_t n = -1;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      n = read(fd, buf, sizeof buf);
      close(fd);
    }
    out.emplace_back(buf, n > 0 ? static_cast<size_t>(n) : 0);
  }
  return out;
}

void RemoveCgroups(const CgroupPlan& plan) {
  for (auto it = plan.dirs.rbegin(); it != plan.dirs.rend(); ++it) {
    // Right after the last task exits, rmdir can still see it (EBUSY) for a moment.
    for (int attempt = 0; attempt < 200; attempt++) {
      if (rmdir(it->c_str()) == 0 || errno == ENOENT) break;
      if (errno != EBUSY) break;
      struct timespec ms = {0, 1000000};
      nanosleep(&ms, nullptr);
    }
  }
}

}  // namespace ns
