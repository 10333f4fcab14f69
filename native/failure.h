// A failed sandbox step: which step, which syscall as written, and errno.
// Plain data (no allocation) so it can cross from the child to the intermediate through a pipe.
#pragma once
#include <cerrno>
#include <cstddef>
#include <cstring>

namespace ns {

struct Failure {
  char step[48];
  char syscall[48];
  int err;
  char detail[128];
};

// Copies at most n-1 bytes and terminates: details (paths) are cut, never overflowed.
inline void CopyCut(char* dst, size_t n, const char* src) {
  size_t i = 0;
  for (; i + 1 < n && src[i] != '\0'; i++) dst[i] = src[i];
  dst[i] = '\0';
}

inline bool Fail(Failure* f, const char* step, const char* syscall, int err, const char* detail = "") {
  CopyCut(f->step, sizeof f->step, step);
  CopyCut(f->syscall, sizeof f->syscall, syscall);
  f->err = err;
  CopyCut(f->detail, sizeof f->detail, detail);
  return false;
}

// Steps return true on success; on failure they fill *f and return false.
#define RETURN_ON_FAILURE(expr) \
  do {                          \
    if (!(expr)) return false;  \
  } while (0)

}  // namespace ns
