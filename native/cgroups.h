// Per-job cgroups, created and removed by the intermediate ("FromParent"). lib/cgroups.ts
// decides version, paths and values (v1 or v2); this file only makes directories, writes the
// files it is given and reads back the ones it is asked for.
#pragma once
#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "failure.h"

namespace ns {

struct CgroupPlan {
  std::vector<std::string> dirs;
  std::vector<std::pair<std::string, std::string>> writes;  // path, value
  std::vector<std::string> procs;                           // cgroup.procs files for the child
  std::vector<std::string> stats;                           // read after the child exited
};

// Creates the job's cgroups, sets their limits and moves the (still waiting) child into them.
bool JoinCgroupsFromParent(const CgroupPlan& plan, pid_t child, Failure* f);

// Reads each stats file (at most 4 KiB each; "" when unreadable).
std::vector<std::string> ReadCgroupStats(const CgroupPlan& plan);

// Removes the job's cgroups, deepest first, retrying while the kernel still holds exiting tasks.
void RemoveCgroups(const CgroupPlan& plan);

}  // namespace ns
