// V8's heap is mapped MADV_DONTFORK (a Node patch for fast fork+exec): a forked child would
// fault on its first heap access. Clear the mark over the whole address space before each fork;
// new heap pages get it again, so once is not enough.
#pragma once

namespace ns {

// Returns the number of mappings visited, or -errno if /proc/self/maps could not be read.
int MarkAddressSpaceDoFork();

}  // namespace ns
