// File-descriptor plumbing: SCM_RIGHTS messages on SOCK_SEQPACKET sockets, pipes, memfds.
#pragma once
#include <sys/types.h>
#include <cstddef>
#include <vector>

namespace ns {

constexpr int kMaxMessageFds = 8;

// sendmsg() one datagram with up to kMaxMessageFds fds attached. Returns 0 or an errno.
int SendMessage(int sock, const void* data, size_t len, const int* fds, int nfds);

// recvmsg() one datagram. Received fds are CLOEXEC. Returns the byte count (0 at EOF) or
// -errno. *truncated is set when data or fds did not fit (the fds that did arrive are closed).
ssize_t RecvMessage(int sock, void* buf, size_t cap, int* fds, int* nfds, bool nonblocking, bool* truncated);

// Duplicate fd to the lowest free number >= min, CLOEXEC, and close the original. -errno on failure.
int MoveFdAbove(int fd, int min);

void CloseFds(const int* fds, int n);

// The fds open in this process, read from /proc/self/fd (allocates). Sets errno and returns false
// when that directory cannot be read.
bool OpenFds(std::vector<int>* out);

// An open fd and the kernel object behind it.
struct FdIdentity {
  int fd;
  dev_t dev;
  ino_t ino;
};

// Every fd of this process with its identity (reads /proc/self/fd; allocates: call before fork).
std::vector<FdIdentity> OpenFdIdentities();

}  // namespace ns
