#include "memory.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25  // Linux 6.1
#endif

namespace ns {

// Reads a /proc file whole into `out`; false (errno set) if it cannot be opened.
static bool ReadProcFile(const char* path, std::string* out) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out->clear();
  char chunk[16384];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out->append(chunk, static_cast<size_t>(n));
  }
  close(fd);
  return true;
}

// Calls f(start, stop, rest) for each line "start-stop rest" of /proc/self/maps text, with rest
// pointing just after the range (at " perms offset dev inode [path]").
template <typename F>
static void ForEachMapping(const std::string& maps, F f) {
  const char* p = maps.c_str();
  while (*p != '\0') {
    char* end;
    uintptr_t start = strtoul(p, &end, 16);
    if (*end == '-') {
      uintptr_t stop = strtoul(end + 1, &end, 16);
      if (stop > start) f(start, stop, static_cast<const char*>(end));
    }
    while (*p != '\0' && *p != '\n') p++;
    if (*p == '\n') p++;
  }
}

int MarkAddressSpaceDoFork() {
  // Runs in the zygote before fork(), where allocation is fine.
  static std::string maps;  // reused: the zygote's only thread that forks is the main one
  if (!ReadProcFile("/proc/self/maps", &maps)) return -errno;
  int count = 0;
  ForEachMapping(maps, [&](uintptr_t start, uintptr_t stop, const char*) {
    // Errors are expected on special mappings ([vsyscall], VM_IO) and harmless.
    madvise(reinterpret_cast<void*>(start), stop - start, MADV_DOFORK);
    count++;
  });
  return count;
}

// The heap arena (native/arena.c) when the zygote was started with it preloaded.
using ArenaStatsFn = int (*)(void*, size_t);

bool GetArenaStats(ArenaStats* out) {
  static auto fn = reinterpret_cast<ArenaStatsFn>(dlsym(RTLD_DEFAULT, "ns_arena_stats"));
  return fn != nullptr && fn(out, sizeof *out) == 1;
}

static bool doForkMarksNeeded = true;

bool NeedsDoForkMarks() { return doForkMarksNeeded; }

int SkipDoForkMarksIfClean() {
  ArenaStats arena;
  if (!GetArenaStats(&arena)) return -ENOENT;
  std::string smaps;
  if (!ReadProcFile("/proc/self/smaps", &smaps)) return -errno;
  // "VmFlags: rd wr mr mw me dc ac": "dc" is VM_DONTCOPY, what MADV_DONTFORK sets.
  int marked = 0;
  for (size_t at = smaps.find("VmFlags:"); at != std::string::npos; at = smaps.find("VmFlags:", at + 1)) {
    size_t end = smaps.find('\n', at);
    std::string flags = " " + smaps.substr(at + 8, end == std::string::npos ? std::string::npos : end - at - 8) + " ";
    if (flags.find(" dc ") != std::string::npos) marked++;
  }
  if (marked == 0) doForkMarksNeeded = false;
  return marked;
}

int64_t CollapseHeap(int minResidentPercent) {
  ArenaStats arena;
  if (!GetArenaStats(&arena)) return -ENOENT;
  std::string maps;
  if (!ReadProcFile("/proc/self/maps", &maps)) return -errno;
  constexpr uintptr_t kHuge = 2u << 20;
  const long page = sysconf(_SC_PAGESIZE);
  const size_t pages = kHuge / static_cast<size_t>(page);
  std::string resident(pages, '\0');
  int64_t collapsed = 0;
  int lastError = 0;
  ForEachMapping(maps, [&](uintptr_t start, uintptr_t stop, const char* fields) {
    // " perms offset dev inode [path]": private, writable, anonymous (inode 0, no path): the
    // arena's mappings, and malloc's large allocations (ArrayBuffer backing stores, say).
    char perms[5] = {};
    unsigned long inode = 1;
    int inodeEnd = 0;
    if (sscanf(fields, " %4s %*s %*s %lu%n", perms, &inode, &inodeEnd) != 2) return;
    const char* rest = fields + inodeEnd;
    while (*rest == ' ') rest++;
    if (inode != 0 || (*rest != '\n' && *rest != '\0') || perms[0] != 'r' || perms[1] != 'w' || perms[3] != 'p') return;
    for (uintptr_t at = (start + kHuge - 1) & ~(kHuge - 1); at + kHuge <= stop; at += kHuge) {
      if (mincore(reinterpret_cast<void*>(at), kHuge, reinterpret_cast<unsigned char*>(&resident[0])) != 0) continue;
      size_t in = 0;
      for (char c : resident) in += static_cast<unsigned char>(c) & 1;
      // A huge page fills the extent's holes with zeroes: only mostly used extents are worth it.
      if (in * 100 < pages * static_cast<size_t>(minResidentPercent)) continue;
      if (madvise(reinterpret_cast<void*>(at), kHuge, MADV_COLLAPSE) == 0) {
        collapsed += static_cast<int64_t>(kHuge);
      } else {
        lastError = errno;
      }
    }
  });
  // Nothing collapsed and every attempt failed (THP off, an old kernel): say why.
  return collapsed == 0 && lastError != 0 ? -lastError : collapsed;
}

}  // namespace ns
