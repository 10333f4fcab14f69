// User-namespace id maps, written by the (still privileged) parent while the child waits.
#pragma once
#include <sys/types.h>

#include "failure.h"

namespace ns {

// Maps one id inside the child's user namespace to outerUid/outerGid outside, with setgroups
// denied. Runs in the intermediate process ("FromParent").
bool WriteIdMapsFromParent(pid_t child, uid_t uid, uid_t outerUid, gid_t gid, gid_t outerGid, Failure* f);

}  // namespace ns
