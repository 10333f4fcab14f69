#include "caps.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>

namespace ns {

static int LastCapability() {
  int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[16] = {};
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  return n > 0 ? atoi(buf) : -1;
}

bool DropPrivileges(uid_t uid, gid_t gid, Failure* f) {
  int last = LastCapability();
  if (last < 0) return Fail(f, "drop capabilities", "read", errno, "/proc/sys/kernel/cap_last_cap");
  for (int cap = 0; cap <= last; cap++) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) return Fail(f, "drop capabilities", "prctl(PR_CAPBSET_DROP)", errno);
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) return Fail(f, "drop capabilities", "prctl(PR_CAP_AMBIENT_CLEAR_ALL)", errno);
  // Root inside gets no special treatment from now on, and that cannot be undone.
  unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP | SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
                       SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
  if (prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) != 0) return Fail(f, "lock securebits", "prctl(PR_SET_SECUREBITS)", errno);
  if (setresgid(gid, gid, gid) != 0) return Fail(f, "become the job user", "setresgid", errno);
  if (setresuid(uid, uid, uid) != 0) return Fail(f, "become the job user", "setresuid", errno);
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capset, &header, data) != 0) return Fail(f, "drop capabilities", "capset", errno);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return Fail(f, "no new privileges", "prctl(PR_SET_NO_NEW_PRIVS)", errno);
  return true;
}

}  // namespace ns
