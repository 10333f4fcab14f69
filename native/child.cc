#include "child.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstring>

namespace ns {

static bool WaitForParent(int syncFd, Failure* f) {
  char go = 0;
  ssize_t n;
  do {
    n = read(syncFd, &go, 1);
  } while (n < 0 && errno == EINTR);
  close(syncFd);
  if (n != 1) return Fail(f, "wait for id maps", "read", n < 0 ? errno : EPIPE, "the parent gave up");
  return true;
}

static bool BecomeRootInside(Failure* f) {
  // Root inside the namespace is the unprivileged outer id that the parent mapped.
  if (setresgid(0, 0, 0) != 0) return Fail(f, "become root inside", "setresgid", errno);
  if (setresuid(0, 0, 0) != 0) return Fail(f, "become root inside", "setresuid", errno);
  return true;
}

static bool SetParentDeathSignal(Failure* f) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) return Fail(f, "parent death signal", "prctl(PR_SET_PDEATHSIG)", errno);
  return true;
}

static bool NewSession(Failure* f) {
  if (setsid() < 0) return Fail(f, "new session", "setsid", errno);
  return true;
}

static bool SetHostname(const char* name, Failure* f) {
  if (sethostname(name, strlen(name)) != 0) return Fail(f, "hostname", "sethostname", errno, name);
  return true;
}

static bool SetupStdio(const ChildPlan& p, Failure* f) {
  int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null < 0) return Fail(f, "stdio", "open", errno, "/dev/null");
  if (dup2(null, 0) < 0) return Fail(f, "stdio", "dup2", errno, "stdin");
  close(null);
  if (dup2(p.stdoutFd, 1) < 0) return Fail(f, "stdio", "dup2", errno, "stdout");
  if (dup2(p.stderrFd, 2) < 0) return Fail(f, "stdio", "dup2", errno, "stderr");
  close(p.stdoutFd);
  close(p.stderrFd);
  return true;
}

static bool CloseInheritedFds(const ChildPlan& p, Failure* f) {
  // The control socket was closed by the intermediate before clone(); the status socket is the
  // intermediate's channel to the app and must never be reachable from job code.
  if (close(p.statusFd) != 0) return Fail(f, "close inherited fds", "close", errno, "status socket");
  return true;
}

static bool ReinitEventLoop(uv_loop_t* loop, Failure* f) {
  // libuv re-creates its epoll fd, async eventfd and signal pipe, and re-arms inherited watchers.
  int r = uv_loop_fork(loop);
  if (r != 0) return Fail(f, "event loop", "uv_loop_fork", -r);
  return true;
}

bool Specialize(const ChildPlan& p, Failure* f) {
  // Before the maps exist we are the overflow uid: nothing privileged works yet.
  RETURN_ON_FAILURE(SetParentDeathSignal(f));
  RETURN_ON_FAILURE(WaitForParent(p.syncFd, f));
  RETURN_ON_FAILURE(BecomeRootInside(f));
  // setresuid() clears PR_SET_PDEATHSIG: set it again.
  RETURN_ON_FAILURE(SetParentDeathSignal(f));
  RETURN_ON_FAILURE(NewSession(f));
  RETURN_ON_FAILURE(SetHostname(p.hostname, f));
  RETURN_ON_FAILURE(SetupStdio(p, f));
  RETURN_ON_FAILURE(CloseInheritedFds(p, f));
  // Last: libuv's fresh fds must not be closed by any step above.
  RETURN_ON_FAILURE(ReinitEventLoop(p.loop, f));
  return true;
}

}  // namespace ns
