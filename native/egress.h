// sandbox.network 'egress': the intermediate links the job's network namespace to the outside.
// Before the job is released it loads the job's firewall (nft, inside the job's user and network
// namespaces) and starts the userspace network stack (pasta or slirp4netns) for that namespace;
// after the job is gone it ends the stack. lib/egress.ts decides the ruleset and both command
// lines; this file only runs them.
#pragma once
#include <sys/types.h>

#include <string>
#include <vector>

#include "failure.h"

namespace ns {

struct EgressPlan {
  bool enabled = false;
  std::string firewall;            // nftables ruleset, fed to `nft -f /dev/stdin`
  std::vector<std::string> nft;    // argv of nft, absolute path first
  std::vector<std::string> stack;  // argv of the network stack, which finds the job's network namespace at fd 5
  // Filled in the zygote before the fork (the intermediate allocates nothing).
  std::vector<char*> nftArgv;
  std::vector<char*> stackArgv;
};

// The running stack: its pid and the intermediate's ends of its pipes.
struct EgressStack {
  pid_t pid = -1;
  int stderrFd = -1;  // read end of the stack's stderr (kept open: a write must never get SIGPIPE)
  int exitFd = -1;    // write end of the stack's fd 4 (slirp4netns --exit-fd): its EOF ends the stack
};

// Builds the argv arrays from the strings: call in the zygote, before the fork.
void PrepareEgress(EgressPlan* plan);

// The job's uid and gid inside its namespace, and the ids they map to outside.
struct JobIds {
  uid_t uid;
  gid_t gid;
  uid_t outerUid;
  gid_t outerGid;
};

// In the intermediate, after the id maps and before the job is released: loads the firewall,
// starts the stack and waits until it reports ready (or the app closes `statusFd`). Both run in
// the job's user namespace as the job's ids (so as its unprivileged id outside).
bool StartEgressFromParent(const EgressPlan& plan, pid_t job, JobIds ids, int statusFd, EgressStack* out, Failure* f);

// Ends the stack and reaps it; safe to call when none was started.
void StopEgressFromParent(EgressStack* stack);

}  // namespace ns
