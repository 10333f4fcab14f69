// A failed sandbox step: which step, which syscall as written, and errno.
// Plain data (no allocation) so it can cross from the child to the intermediate through a pipe.
#pragma once
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace ns {

struct Failure {
  char step[48];
  char syscall[48];
  int err;
  char detail[128];
};

inline bool Fail(Failure* f, const char* step, const char* syscall, int err, const char* detail = "") {
  snprintf(f->step, sizeof f->step, "%s", step);
  snprintf(f->syscall, sizeof f->syscall, "%s", syscall);
  f->err = err;
  snprintf(f->detail, sizeof f->detail, "%s", detail);
  return false;
}

// Steps return true on success; on failure they fill *f and return false.
#define RETURN_ON_FAILURE(expr) \
  do {                          \
    if (!(expr)) return false;  \
  } while (0)

}  // namespace ns
