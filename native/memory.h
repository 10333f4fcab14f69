// V8's heap is mapped MADV_DONTFORK (a Node patch for fast fork+exec): a forked child would
// fault on its first heap access. Clear the mark over the whole address space before each fork;
// new heap pages get it again, so once is not enough.
#pragma once

#include <cstdint>

namespace ns {

// Returns the number of mappings visited, or -errno if /proc/self/maps could not be read.
int MarkAddressSpaceDoFork();

// Whether MarkAddressSpaceDoFork() is needed before a fork: yes until SkipDoForkMarksIfClean()
// found the heap arena in this process (it drops MADV_DONTFORK) and no mapping marked.
bool NeedsDoForkMarks();

// With the heap arena: counts the mappings marked MADV_DONTFORK now (/proc/self/smaps), and if
// there are none, stops NeedsDoForkMarks(). Returns that count, or -errno (ENOENT: no arena).
int SkipDoForkMarksIfClean();

// The zygote's heap arena (native/arena.c, preloaded into the zygote): false without one.
struct ArenaStats {
  uint64_t base, size, takenBytes, freeRanges, fallbacks, lostBytes, dontforkDropped;
};
bool GetArenaStats(ArenaStats* out);

// With the heap arena in this process: collapses the resident 2 MiB extents (at least
// minResidentPercent of their pages in memory) of its private anonymous mappings into
// transparent huge pages, so that a fork copies one page table entry for each. That is the arena
// (V8's heap) and malloc's large allocations (ArrayBuffer backing stores, say).
// Returns the bytes collapsed, or -errno: ENOENT without an arena, else why every attempt failed.
int64_t CollapseHeap(int minResidentPercent);

}  // namespace ns
