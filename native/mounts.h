// The child's filesystem: a fresh tmpfs root holding only what the plan (decided on the
// TypeScript side) binds into it, then pivot_root with the old root detached.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "failure.h"

namespace ns {

enum class MountKind : int { kBind = 1, kTmpfs = 2, kProc = 3, kDevice = 4, kFile = 5, kSymlink = 6 };

struct MountOp {
  MountKind kind;
  std::string source;  // host path (binds, devices); the link's text (symlinks)
  std::string target;  // absolute path inside the new root
  bool writable;
  int64_t sizeBytes;    // tmpfs only
  std::string content;  // kFile: the file's bytes (a read-only file of the job's root, not a bind)
};

// Builds the new root from `ops` (in order) and makes it the child's "/". Runs in the child
// after its id maps exist; allocates nothing (the plan was copied in the zygote).
bool SetupFilesystem(const std::vector<MountOp>& ops, Failure* f);

}  // namespace ns
