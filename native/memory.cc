#include "memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

namespace ns {

int MarkAddressSpaceDoFork() {
  // Runs in the zygote before fork(), where allocation is fine.
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  static std::string maps;  // reused: the zygote's only thread that forks is the main one
  maps.clear();
  char chunk[16384];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    maps.append(chunk, static_cast<size_t>(n));
  }
  close(fd);
  int count = 0;
  const char* p = maps.c_str();
  while (*p != '\0') {
    char* end;
    unsigned long start = strtoul(p, &end, 16);
    if (*end == '-') {
      unsigned long stop = strtoul(end + 1, &end, 16);
      if (stop > start) {
        // Errors are expected on special mappings ([vsyscall], VM_IO) and harmless.
        madvise(reinterpret_cast<void*>(start), stop - start, MADV_DOFORK);
        count++;
      }
    }
    while (*p != '\0' && *p != '\n') p++;
    if (*p == '\n') p++;
  }
  return count;
}

}  // namespace ns
