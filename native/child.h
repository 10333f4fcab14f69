// The child's side of a job: everything between clone() and the return to JavaScript.
#pragma once
#include <sys/time.h>
#include <sys/types.h>
#include <uv.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "failure.h"
#include "fds.h"
#include "landlock.h"
#include "mounts.h"

namespace ns {

// One setrlimit() in the child (soft = hard).
struct RlimitOp {
  int resource;
  uint64_t limit;
  bool aboveInherited;  // the limit counts from what the job inherits (RLIMIT_DATA: inheritedDataBytes)
};

struct ChildPlan {
  int syncFd;    // read end: the parent writes one byte once our id maps are in place
  int statusFd;  // the job's status socket: the intermediate's, never the job's
  int stdoutFd;  // pipe write ends from the app
  int stderrFd;
  int resultFd;  // kept for the job runner
  int payloadFd;
  int noteFd;  // write end: a fatal signal the job sent itself (see ForwardFatalSignals)
  const char* hostname;
  uid_t uid;  // the job's ids inside its namespace
  gid_t gid;
  uv_loop_t* loop;
  const std::vector<FdIdentity>* zygoteFds;  // what the zygote had open when it forked
  const std::vector<MountOp>* mounts;
  uint64_t landlockHandled;
  uint64_t landlockScoped;
  const std::vector<LandlockRule>* landlock;
  const std::vector<uint8_t>* seccomp;
  const std::vector<RlimitOp>* rlimits;
  uint64_t inheritedDataBytes;  // VmData at the fork, for limits counted above it
};

// The ordered list of setup steps. Allocates nothing and throws nothing.
bool Specialize(const ChildPlan& plan, Failure* f);

// What a job child writes to its intermediate on the note pipe, in one write (atomic): `kind`
// 1..64 alone is a fatal signal it sent itself; kNoteExit is its exit, with the exit code and its
// own rusage, sent after it closed every other fd. The intermediate then kills it and reports the
// exit at once, without waiting for the kernel to tear down its address space. The values come
// from the job's process: the intermediate bounds them, and they only inform.
constexpr uint8_t kNoteExit = 0x80;
// A seccomp trap (SIGSYS with si_code SYS_SECCOMP): `syscall` holds the call the filter stopped.
// Only the self-test's filter traps; a job's kills, and the kernel reports nothing of it.
constexpr uint8_t kNoteSeccomp = 0x81;

// A struct timeval (rusage times) in microseconds.
inline int64_t TimevalUs(const struct timeval& t) { return static_cast<int64_t>(t.tv_sec) * 1000000 + t.tv_usec; }

struct ExitNote {
  uint8_t kind;
  uint8_t code;
  uint8_t pad[2];
  int32_t syscall;
  int64_t userUs;
  int64_t systemUs;
  int64_t maxRssKb;
};

// In a job child: closes every fd but the note pipe (the app sees the end of stdout, stderr and
// the result now) and announces the exit. Elsewhere (the zygote) does nothing.
void AnnounceExit(int code);

}  // namespace ns
