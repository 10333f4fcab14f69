// Identity and privilege: the job's final uid/gid inside its namespace, every capability set
// emptied (the last capability read from the kernel), securebits locked, no_new_privs.
#pragma once
#include <sys/types.h>

#include "failure.h"

namespace ns {

// Order matters: the bounding set and securebits need CAP_SETPCAP, which capset() then removes.
bool DropPrivileges(uid_t uid, gid_t gid, Failure* f);

}  // namespace ns
