// The zygote's heap arena: preloaded into the zygote (LD_PRELOAD), it places V8's heap pages in
// one contiguous, 2 MiB-aligned reservation instead of at V8's random addresses.
//
// Why: every job forks the zygote twice, and a fork copies the page tables of every private
// mapping. V8 maps its heap in 256 KiB pages at random addresses: hundreds of small mappings
// that no huge page can back. Packed into one range they merge into a few mappings, and the
// zygote can collapse their resident 2 MiB extents into transparent huge pages before it serves
// (CollapseHeap in memory.cc): a fork then copies one entry per 2 MiB instead of 512.
//
// What it takes: the mmap() calls that ask for private anonymous memory at a hint address,
// without MAP_FIXED, between 64 KiB and 1 GiB. That is how V8 allocates its pages; glibc's own
// mmap calls (malloc, thread stacks) do not go through this symbol and pass no hint. Everything
// else, and everything once the arena is full, goes to the kernel unchanged. munmap() of an arena
// range puts the reservation back and frees the range for reuse; like the kernel's, it accepts a
// range unmapped before or one that spans free space, and then frees only what was in use.
//
// It also drops MADV_DONTFORK (see arena_madvise), so that the zygote's forks need not undo it.
//
// The arena is inherited by every fork; a job's own new pages come from its copy of the arena.
// Plain C, no allocation: it runs inside mmap().
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define KiB (1ul << 10)
#define MiB (1ul << 20)
#define GiB (1ul << 30)
#define ARENA_SIZE (8 * GiB)
#define HUGE_PAGE (2 * MiB)
#define V8_PAGE (256 * KiB)
#define MAX_FREE 16384

static uintptr_t arena_base, arena_end;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
// The free ranges, sorted by address, never adjacent (adjacent ones are merged).
struct range {
  uintptr_t start, end;
};
static struct range free_list[MAX_FREE];
static int free_count;
static uint64_t taken_bytes, fallbacks, lost_bytes;
static uint64_t dontfork_dropped;

// syscall() returns -1 and sets errno on failure.
static int failed(long r) { return r == -1; }

static long sys_mmap(uintptr_t addr, size_t len, int prot, int flags, int fd, off_t off) { return syscall(SYS_mmap, addr, len, prot, flags, fd, off); }

static void atfork_lock(void) { pthread_mutex_lock(&lock); }
static void atfork_unlock(void) { pthread_mutex_unlock(&lock); }

__attribute__((constructor)) static void arena_init(void) {
  long r = sys_mmap(0, ARENA_SIZE + HUGE_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (failed(r)) return;  // no arena: every call goes to the kernel
  uintptr_t start = (uintptr_t)r, base = (start + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
  // Trim the alignment slack so the arena is exactly [base, base + ARENA_SIZE).
  if (base > start) syscall(SYS_munmap, start, base - start);
  syscall(SYS_munmap, base + ARENA_SIZE, start + HUGE_PAGE - base);
  // A fork while another thread holds the lock would leave the child's copy locked.
  if (pthread_atfork(atfork_lock, atfork_unlock, atfork_unlock) != 0) {
    syscall(SYS_munmap, base, ARENA_SIZE);
    return;
  }
  arena_base = base;
  arena_end = base + ARENA_SIZE;
  free_list[0] = (struct range){arena_base, arena_end};
  free_count = 1;
}

// Drops the n free ranges from index i.
static void remove_free(int i, int n) {
  memmove(&free_list[i], &free_list[i + n], (size_t)(free_count - i - n) * sizeof free_list[0]);
  free_count -= n;
}

// Inserts [start, end) as free range i; 0 when the list is full.
static int insert_free(int i, uintptr_t start, uintptr_t end) {
  if (free_count == MAX_FREE) return 0;
  memmove(&free_list[i + 1], &free_list[i], (size_t)(free_count - i) * sizeof free_list[0]);
  free_list[i] = (struct range){start, end};
  free_count++;
  return 1;
}

// First fit. Requests of a V8 page or more start on a V8 page boundary: V8 asks for size plus
// alignment and unmaps the excess, so an aligned start leaves only a tail, which merges with the
// free space after it and keeps the pages packed.
static uintptr_t take(size_t len) {
  uintptr_t align = len >= V8_PAGE ? V8_PAGE : 4 * KiB;
  for (int i = 0; i < free_count; i++) {
    struct range r = free_list[i];
    uintptr_t at = (r.start + align - 1) & ~(align - 1);
    if (at >= r.end || r.end - at < len) continue;
    if (at + len == r.end) {
      remove_free(i, 1);
    } else {
      free_list[i].start = at + len;
    }
    // The skipped head stays free: a range of its own before the rest, which index i now holds
    // (the tail, or the next range).
    if (at > r.start && !insert_free(i, r.start, at)) lost_bytes += at - r.start;
    taken_bytes += len;
    return at;
  }
  return 0;
}

// Back to the free list, merged with its neighbours and with any free range it overlaps (a range
// unmapped twice, or one that spans free space, must not be handed out twice). With the list
// full, the range stays reserved but unused: address space lost, not memory.
static void give(uintptr_t start, size_t len) {
  uintptr_t end = start + len;
  // The free ranges that overlap or touch [start, end): indexes first..last-1.
  int first = 0;
  while (first < free_count && free_list[first].end < start) first++;
  int last = first;
  uintptr_t already = 0;  // bytes of [start, end) that were free
  while (last < free_count && free_list[last].start <= end) {
    uintptr_t lo = free_list[last].start > start ? free_list[last].start : start;
    uintptr_t hi = free_list[last].end < end ? free_list[last].end : end;
    if (hi > lo) already += hi - lo;
    last++;
  }
  taken_bytes -= len - already;
  if (last > first) {
    // Merge them all with the new range into the first.
    if (free_list[first].start < start) start = free_list[first].start;
    if (free_list[last - 1].end > end) end = free_list[last - 1].end;
    free_list[first] = (struct range){start, end};
    remove_free(first + 1, last - first - 1);
  } else if (!insert_free(first, start, end)) {
    lost_bytes += len;
  }
}

static int wanted(void* addr, size_t len, int flags, int fd) {
  return arena_base != 0 && addr != NULL && fd == -1 && (flags & MAP_ANONYMOUS) && (flags & MAP_PRIVATE) &&
         !(flags & (MAP_FIXED | MAP_FIXED_NOREPLACE | MAP_SHARED | MAP_GROWSDOWN | MAP_HUGETLB)) && len >= 64 * KiB && len <= 1 * GiB &&
         (len & (4 * KiB - 1)) == 0;
}

// The exported names are set with asm labels: with _FILE_OFFSET_BITS=64 the headers redirect
// `mmap` to mmap64, and both symbols must be ours. (On x86-64 off_t is 64 bits either way.)
void* arena_mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) __asm__("mmap");
void* arena_mmap64(void* addr, size_t len, int prot, int flags, int fd, off_t off) __asm__("mmap64");
int arena_munmap(void* addr, size_t len) __asm__("munmap");
int arena_madvise(void* addr, size_t len, int advice) __asm__("madvise");

void* arena_mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  if (wanted(addr, len, flags, fd)) {
    pthread_mutex_lock(&lock);
    uintptr_t at = take(len);
    long r = at ? sys_mmap(at, len, prot, flags | MAP_FIXED, -1, 0) : -1;
    if (at && failed(r)) {
      // A failed MAP_FIXED may or may not have removed the reservation under it: never hand the
      // range out again, and put a reservation back only where nothing is mapped.
      sys_mmap(at, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
      taken_bytes -= len;
      lost_bytes += len;
    }
    if (!at) fallbacks++;
    pthread_mutex_unlock(&lock);
    if (at && !failed(r)) return (void*)r;
  }
  return (void*)sys_mmap((uintptr_t)addr, len, prot, flags, fd, off);  // MAP_FAILED and errno on failure
}

void* arena_mmap64(void* addr, size_t len, int prot, int flags, int fd, off_t off) { return arena_mmap(addr, len, prot, flags, fd, off); }

int arena_munmap(void* addr, size_t len) {
  uintptr_t start = (uintptr_t)addr;
  uintptr_t end = start + ((len + 4 * KiB - 1) & ~(4 * KiB - 1));
  if (arena_base == 0 || (start & (4 * KiB - 1)) != 0 || len == 0 || end < start || end <= arena_base || start >= arena_end) {
    return (int)syscall(SYS_munmap, addr, len);  // not the arena's: -1 and errno on failure
  }
  // The part outside the arena, if any, is the kernel's; the part inside goes back to the arena.
  uintptr_t lo = start > arena_base ? start : arena_base, hi = end < arena_end ? end : arena_end;
  if (lo > start && syscall(SYS_munmap, start, lo - start) != 0) return -1;
  if (end > hi && syscall(SYS_munmap, hi, end - hi) != 0) return -1;
  pthread_mutex_lock(&lock);
  long r = sys_mmap(lo, hi - lo, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
  if (!failed(r)) {
    give(lo, hi - lo);
  } else {
    // Could not put the reservation back (the mapping limit, say). Unmapping would leave a hole
    // that the kernel may fill with another mapping, which a later MAP_FIXED would clobber: keep
    // the range mapped but drop its pages, and never hand it out again.
    madvise((void*)lo, hi - lo, MADV_DONTNEED);
    lost_bytes += hi - lo;
  }
  pthread_mutex_unlock(&lock);
  return 0;
}

// MADV_DONTFORK is dropped. Node marks V8's heap with it (for a fast fork and exec), and a forked
// child would be left without the zygote's heap; the zygote used to undo it over its whole
// address space before every fork. In the zygote's jobs the only effect is that a job's own fork
// copies its whole address space, as it would on any other system.
int arena_madvise(void* addr, size_t len, int advice) {
  if (advice == MADV_DONTFORK) {
    __atomic_add_fetch(&dontfork_dropped, 1, __ATOMIC_RELAXED);
    return 0;
  }
  return (int)syscall(SYS_madvise, addr, len, advice);  // -1 and errno on failure
}

// For the addon (found with dlsym): where the arena is and how it is used. Writes at most `size`
// bytes of the struct (callers built against a shorter one get its prefix). Returns 0 without an
// arena.
struct ns_arena_stats {
  uint64_t base, size, taken_bytes, free_ranges, fallbacks, lost_bytes, dontfork_dropped;
};

__attribute__((visibility("default"))) int ns_arena_stats(void* out, size_t size) {
  if (arena_base == 0) return 0;
  struct ns_arena_stats s;
  pthread_mutex_lock(&lock);
  s.base = arena_base;
  s.size = ARENA_SIZE;
  s.taken_bytes = taken_bytes;
  s.free_ranges = (uint64_t)free_count;
  s.fallbacks = fallbacks;
  s.lost_bytes = lost_bytes;
  pthread_mutex_unlock(&lock);
  s.dontfork_dropped = __atomic_load_n(&dontfork_dropped, __ATOMIC_RELAXED);
  memcpy(out, &s, size < sizeof s ? size : sizeof s);
  return 1;
}
