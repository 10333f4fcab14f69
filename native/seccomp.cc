#include "seccomp.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace ns {

bool InstallSeccomp(const std::vector<uint8_t>& program, Failure* f) {
  if (program.empty()) return true;
  if (program.size() % sizeof(struct sock_filter) != 0) return Fail(f, "seccomp", "seccomp", EINVAL, "filter size is not a multiple of 8");
  struct sock_fprog prog = {};
  prog.len = static_cast<unsigned short>(program.size() / sizeof(struct sock_filter));
  prog.filter = reinterpret_cast<struct sock_filter*>(const_cast<uint8_t*>(program.data()));
  // TSYNC: every thread of the child, though after clone there is only this one.
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0)
    return Fail(f, "seccomp", "seccomp(SECCOMP_SET_MODE_FILTER)", errno);
  return true;
}

}  // namespace ns
