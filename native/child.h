// The child's side of a job: everything between clone() and the return to JavaScript.
#pragma once
#include <uv.h>

#include "failure.h"

namespace ns {

struct ChildPlan {
  int syncFd;      // read end: the parent writes one byte once our id maps are in place
  int statusFd;    // the job's status socket: the intermediate's, never the job's
  int stdoutFd;    // pipe write ends from the app
  int stderrFd;
  const char* hostname;
  uv_loop_t* loop;
};

// The ordered list of setup steps. Allocates nothing and throws nothing.
bool Specialize(const ChildPlan& plan, Failure* f);

}  // namespace ns
