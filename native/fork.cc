#include "fork.h"

#include <fcntl.h>
#include <poll.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "child.h"
#include "failure.h"
#include "fds.h"
#include "memory.h"
#include "userns.h"
#include "wire.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

namespace ns {

int64_t MonotonicNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// --- JobEvent messages, written without allocation --------------------------------------------

static void SendStarted(int statusFd, pid_t pid, int pidfd, int64_t receivedNs, int64_t forkedNs, int64_t releasedNs) {
  WireWriter w;
  w.BeginStruct(kStarted);
  w.I32(1, pid);
  w.I64(2, receivedNs);
  w.I64(3, forkedNs);
  w.I64(4, releasedNs);
  w.EndStruct();
  w.EndStruct();
  SendMessage(statusFd, w.data(), w.size(), &pidfd, pidfd >= 0 ? 1 : 0);
}

static void SendSetupFailed(int statusFd, const Failure& f) {
  WireWriter w;
  w.BeginStruct(kSetupFailed);
  w.String(1, f.step);
  w.String(2, f.syscall);
  w.I32(3, f.err);
  w.String(4, f.detail);
  w.EndStruct();
  w.EndStruct();
  SendMessage(statusFd, w.data(), w.size(), nullptr, 0);
}

static void SendExited(int statusFd, int code, int signal, int64_t userUs, int64_t systemUs, int64_t maxRssKb, const std::vector<std::string>& stats,
                       int seccompSyscall) {
  WireWriter w;
  w.BeginStruct(kExited);
  w.I32(1, code);
  w.I32(2, signal);
  w.I64(3, userUs);
  w.I64(4, systemUs);
  w.I64(5, maxRssKb);
  w.I64(6, MonotonicNs());
  w.StringList(7, stats);
  if (seccompSyscall >= 0) w.I32(8, seccompSyscall);
  w.EndStruct();
  w.EndStruct();
  SendMessage(statusFd, w.data(), w.size(), nullptr, 0);
}

// --- the intermediate process ------------------------------------------------------------------

struct Noted {
  int signal = 0;           // a fatal signal the job sent itself (then killed), -1 once its end closed
  int seccompSyscall = -1;  // the call a seccomp trap stopped (then killed as by SIGSYS)
  bool exited = false;      // the job announced its exit (then killed): `exit` holds what it said
  ExitNote exit = {};
};

// Waits until the job exits, announces its exit, or reports a fatal signal it sent itself (PID 1
// cannot die of that on its own). In the last two cases kills it (no more of its code runs) and
// returns at once for an announced exit: the teardown of its address space can take
// milliseconds, and the run does not need to wait for it.
static Noted WaitForExitOrNote(int pidfd, int noteFd) {
  Noted noted;
  if (pidfd < 0) return noted;
  for (;;) {
    struct pollfd fds[2] = {{pidfd, POLLIN, 0}, {noted.signal == 0 ? noteFd : -1, POLLIN, 0}};
    int n = poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) return noted;
    if ((fds[1].revents & POLLIN) != 0) {
      ExitNote note = {};
      ssize_t got = read(noteFd, &note, sizeof note);
      if (got == 1 && note.kind > 0 && note.kind < 65) {
        noted.signal = note.kind;
        syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
      } else if (got == static_cast<ssize_t>(sizeof note) && note.kind == kNoteSeccomp) {
        noted.signal = SIGSYS;
        noted.seccompSyscall = note.syscall < 0 || note.syscall > 4095 ? 4095 : note.syscall;
        syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
      } else if (got == static_cast<ssize_t>(sizeof note) && note.kind == kNoteExit) {
        syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
        // Within what a process can use: a year of CPU, 1 TiB of memory.
        auto bound = [](int64_t v, int64_t max) { return v < 0 ? 0 : v > max ? max : v; };
        note.userUs = bound(note.userUs, int64_t{366} * 24 * 3600 * 1000000);
        note.systemUs = bound(note.systemUs, int64_t{366} * 24 * 3600 * 1000000);
        note.maxRssKb = bound(note.maxRssKb, int64_t{1} << 30);
        noted.exited = true;
        noted.exit = note;
        return noted;
      }
    } else if ((fds[1].revents & (POLLHUP | POLLERR)) != 0) {
      noted.signal = -1;  // the job closed its end: only its exit is left to wait for
    }
  }
}

// This process's private data (VmData in /proc/self/status, the mm's data_vm that RLIMIT_DATA
// bounds), which the job cloned from it inherits. Reads into the stack: nothing is allocated.
static bool ReadVmData(uint64_t* bytes, Failure* f) {
  char buf[4096];
  int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Fail(f, "resource limits", "open", errno, "/proc/self/status");
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return Fail(f, "resource limits", "read", n < 0 ? errno : EIO, "/proc/self/status");
  buf[n] = '\0';
  const char* at = strstr(buf, "\nVmData:");
  if (at == nullptr) return Fail(f, "resource limits", "read", EINVAL, "no VmData in /proc/self/status");
  *bytes = strtoull(at + 8, nullptr, 10) * 1024;
  return true;
}

[[noreturn]] static void FailIntermediate(int statusFd, const Failure& f) {
  SendSetupFailed(statusFd, f);
  _exit(0);
}

// Runs in the intermediate: single-threaded (glibc fork() ran the atfork handlers), still
// privileged outside. Returns only in the job child, after Specialize() succeeded.
static ForkOutcome RunIntermediate(const ForkRequest& r, const std::vector<FdIdentity>& zygoteFds, pid_t zygote, int64_t forkedNs) {
  Failure f;
  // Die with the zygote.
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != zygote) _exit(1);
  close(r.controlFd);
  // The zygote ignores SIGCHLD to have its intermediates reaped; we reap the job ourselves.
  signal(SIGCHLD, SIG_DFL);
  // A root zygote's supplementary groups would follow the job into its namespace. Where
  // setgroups is denied (a root app inside a user namespace), they are the app's own: keep going.
  if (geteuid() == 0 && setgroups(0, nullptr) != 0 && errno != EPERM) {
    Fail(&f, "drop supplementary groups", "setgroups", errno);
    FailIntermediate(r.statusFd, f);
  }
  int sync[2], err[2], note[2];
  if (pipe2(sync, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 || pipe2(note, O_CLOEXEC) != 0) {
    Fail(&f, "handshake pipes", "pipe2", errno);
    FailIntermediate(r.statusFd, f);
  }
  uint64_t inheritedData = 0;
  for (const RlimitOp& l : r.rlimits) {
    if (l.aboveInherited && !ReadVmData(&inheritedData, &f)) FailIntermediate(r.statusFd, f);
  }
  int pidfd = -1;
  long pid = syscall(SYS_clone, r.cloneFlags | CLONE_PIDFD | SIGCHLD, nullptr, &pidfd, nullptr, 0);
  if (pid == 0) {
    close(sync[1]);
    close(err[0]);
    close(note[0]);
    ChildPlan plan = {sync[0], r.statusFd, r.stdoutFd, r.stderrFd,        r.resultFd,       r.payloadFd, note[1],    r.hostname, r.uid,        r.gid,
                      r.loop,  &zygoteFds, &r.mounts,  r.landlockHandled, r.landlockScoped, &r.landlock, &r.seccomp, &r.rlimits, inheritedData};
    if (!Specialize(plan, &f)) {
      ssize_t ignored = write(err[1], &f, sizeof f);
      (void)ignored;
      _exit(127);
    }
    close(err[1]);  // EOF on the error pipe tells the intermediate that setup succeeded
    return {0, 0, true};
  }
  if (pid < 0) {
    Fail(&f, "clone", "clone", errno, "new user, pid, mount, net, uts, ipc and cgroup namespaces");
    FailIntermediate(r.statusFd, f);
  }
  close(sync[0]);
  close(err[1]);
  close(note[1]);
  close(r.stdoutFd);
  close(r.stderrFd);
  close(r.resultFd);
  close(r.payloadFd);

  // Limits apply before the child runs a single instruction of its own, and so does the network:
  // with egress, its firewall is loaded and its stack runs before the child is released.
  EgressStack stack;
  bool mapped = WriteIdMapsFromParent(static_cast<pid_t>(pid), r.uid, r.outerUid, r.gid, r.outerGid, &f) &&
                JoinCgroupsFromParent(r.cgroups, static_cast<pid_t>(pid), &f) &&
                StartEgressFromParent(r.egress, static_cast<pid_t>(pid), {r.uid, r.gid, r.outerUid, r.outerGid}, r.statusFd, &stack, &f);
  // Stamped before the release: the child can be running (and stamping its own marks) before this
  // process is scheduled again.
  int64_t releasedNs = MonotonicNs();
  if (mapped) {
    ssize_t ignored = write(sync[1], "G", 1);
    (void)ignored;
  } else {
    SendSetupFailed(r.statusFd, f);
  }
  close(sync[1]);  // without the byte, the child reads EOF and exits
  if (mapped) {
    SendStarted(r.statusFd, static_cast<pid_t>(pid), pidfd, r.receivedNs, forkedNs, releasedNs);
    ssize_t n;
    do {
      n = read(err[0], &f, sizeof f);
    } while (n < 0 && errno == EINTR);
    if (n == static_cast<ssize_t>(sizeof f)) {
      f.step[sizeof f.step - 1] = f.syscall[sizeof f.syscall - 1] = f.detail[sizeof f.detail - 1] = '\0';
      SendSetupFailed(r.statusFd, f);
    }
  }
  close(err[0]);
  Noted noted = WaitForExitOrNote(pidfd, note[0]);
  close(note[0]);
  if (pidfd >= 0) close(pidfd);
  if (noted.exited) {
    // Announced: the job closed its fds and is killed. Its cgroup counters are final.
    const ExitNote& n = noted.exit;
    SendExited(r.statusFd, n.code, 0, n.userUs, n.systemUs, n.maxRssKb, ReadCgroupStats(r.cgroups), -1);
  }
  int status = 0;
  struct rusage ru = {};
  while (wait4(static_cast<pid_t>(pid), &status, 0, &ru) < 0 && errno == EINTR) {
  }
  if (!noted.exited) {
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    int signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    // Killed by us on the job's own fatal signal: report that signal, as for any other process.
    if (noted.signal > 0 && signal == SIGKILL) signal = noted.signal;
    SendExited(r.statusFd, code, signal, TimevalUs(ru.ru_utime), TimevalUs(ru.ru_stime), ru.ru_maxrss, ReadCgroupStats(r.cgroups), noted.seccompSyscall);
  }
  // The job's network namespace is gone with it: its stack has nothing left to serve.
  StopEgressFromParent(&stack);
  // The run settles on Exited; removing the cgroups (slow on v1) happens after it, off the
  // request path. The app learns that it is done when this process exits (status socket EOF).
  RemoveCgroups(r.cgroups);
  _exit(0);
}

ForkOutcome ForkJob(const ForkRequest& r) {
  if (NeedsDoForkMarks()) MarkAddressSpaceDoFork();
  static std::vector<FdIdentity> zygoteFds;  // read by the child, which copies nothing
  zygoteFds = OpenFdIdentities();
  pid_t zygote = getpid();
  pid_t pid = fork();
  if (pid == 0) return RunIntermediate(r, zygoteFds, zygote, MonotonicNs());
  int fds[] = {r.statusFd, r.stdoutFd, r.stderrFd, r.resultFd, r.payloadFd};
  if (pid < 0) {
    int e = errno;
    Failure f;
    Fail(&f, "fork", "fork", e, "the zygote could not fork an intermediate process");
    SendSetupFailed(r.statusFd, f);
    CloseFds(fds, 5);
    return {-1, e, false};
  }
  CloseFds(fds, 5);
  return {pid, 0, false};
}

}  // namespace ns
