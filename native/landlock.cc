#include "landlock.h"

#include <fcntl.h>
#include <linux/landlock.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace ns {

// The rights Landlock accepts in a rule for a file (EINVAL for any other): execute, write, read,
// truncate (ABI 3) and ioctl on a device (ABI 5). A bound file (a job module in /tmp, a
// package.json, a file in readOnlyPaths) keeps these among the rights of its rule.
constexpr uint64_t kFileRights =
    LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE | (uint64_t{1} << 14) | (uint64_t{1} << 15);

// struct landlock_ruleset_attr as of ABI 6, spelled out for kernel headers that predate it.
struct RulesetAttr {
  uint64_t handledAccessFs;
  uint64_t handledAccessNet;
  uint64_t scoped;
};

int LandlockAbi() {
  long abi = syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  return abi < 0 ? -errno : static_cast<int>(abi);
}

bool RestrictFilesystem(uint64_t handledAccess, uint64_t scoped, const std::vector<LandlockRule>& rules, Failure* f) {
  if (handledAccess == 0) return true;
  RulesetAttr attr = {};
  attr.handledAccessFs = handledAccess;
  attr.scoped = scoped;
  // Without scopes, only the first field: what every ABI knows.
  size_t size = scoped != 0 ? sizeof attr : sizeof attr.handledAccessFs;
  int ruleset = static_cast<int>(syscall(SYS_landlock_create_ruleset, &attr, size, 0));
  if (ruleset < 0) return Fail(f, "landlock", "landlock_create_ruleset", errno);
  for (const LandlockRule& rule : rules) {
    int fd = open(rule.path.c_str(), O_PATH | O_CLOEXEC);
    if (fd < 0) {
      int e = errno;
      close(ruleset);
      return Fail(f, "landlock", "open(O_PATH)", e, rule.path.c_str());
    }
    struct landlock_path_beneath_attr beneath = {};
    beneath.allowed_access = rule.access & handledAccess;
    struct stat st;
    if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode)) beneath.allowed_access &= kFileRights;
    beneath.parent_fd = fd;
    long r = syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &beneath, 0);
    int e = errno;
    close(fd);
    if (r != 0) {
      close(ruleset);
      return Fail(f, "landlock", "landlock_add_rule", e, rule.path.c_str());
    }
  }
  long r = syscall(SYS_landlock_restrict_self, ruleset, 0);
  int e = errno;
  close(ruleset);
  if (r != 0) return Fail(f, "landlock", "landlock_restrict_self", e);
  return true;
}

}  // namespace ns
