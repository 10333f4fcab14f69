// The zygote's side of a job: fork() an intermediate process, which clone()s the job into new
// namespaces, maps its ids, releases it, reports to the app and reaps it.
#pragma once
#include <sys/types.h>
#include <uv.h>

#include <cstdint>
#include <vector>

#include "cgroups.h"
#include "child.h"
#include "egress.h"
#include "fds.h"
#include "landlock.h"
#include "mounts.h"

namespace ns {

struct ForkRequest {
  int statusFd;  // SOCK_SEQPACKET to the app: JobEvent messages
  int stdoutFd;  // pipe write ends
  int stderrFd;
  int resultFd;   // pipe write end for the job's result
  int payloadFd;  // sealed memfd with the job's arguments and inputs
  int controlFd;  // the zygote's control socket, closed in the intermediate
  const char* hostname;
  uid_t outerUid;  // the job's ids inside map to these ids outside
  gid_t outerGid;
  uid_t uid;  // the job's ids inside its namespace
  gid_t gid;
  std::vector<MountOp> mounts;
  uint64_t landlockHandled;
  uint64_t landlockScoped;
  std::vector<LandlockRule> landlock;
  std::vector<uint8_t> seccomp;
  CgroupPlan cgroups;
  std::vector<RlimitOp> rlimits;
  unsigned long cloneFlags;  // CLONE_NEW* set, policy from the TypeScript side
  EgressPlan egress;         // sandbox.network 'egress': firewall and network stack
  int64_t receivedNs;
  uv_loop_t* loop;
};

struct ForkOutcome {
  pid_t pid;     // intermediate's pid in the zygote; 0 in the job child; -1 on failure
  int err;       // errno of a failed fork()
  bool inChild;  // true only in the job child, after Specialize succeeded
};

ForkOutcome ForkJob(const ForkRequest& r);

int64_t MonotonicNs();

}  // namespace ns
