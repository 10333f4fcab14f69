// Landlock, a second filesystem layer under the mount namespace: the job may touch only the
// paths the plan names, with the access rights the TypeScript side computed for the ABI.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "failure.h"

namespace ns {

struct LandlockRule {
  std::string path;
  uint64_t access;
};

// Highest Landlock ABI of this kernel, or -errno (EOPNOTSUPP / ENOSYS when absent or disabled).
int LandlockAbi();

// handledAccess == 0 means Landlock is off for this job. `scoped`: LANDLOCK_SCOPE_* bits (ABI 6),
// 0 where the kernel has no scopes.
bool RestrictFilesystem(uint64_t handledAccess, uint64_t scoped, const std::vector<LandlockRule>& rules, Failure* f);

}  // namespace ns
