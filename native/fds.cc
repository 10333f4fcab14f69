#include "fds.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <cstdlib>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ns {

int SendMessage(int sock, const void* data, size_t len, const int* fds, int nfds) {
  if (nfds < 0 || nfds > kMaxMessageFds) return EINVAL;
  struct iovec iov = {const_cast<void*>(data), len};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxMessageFds)];
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (nfds > 0) {
    memset(control, 0, sizeof control);
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
  }
  for (;;) {
    ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n >= 0) return static_cast<size_t>(n) == len ? 0 : EMSGSIZE;
    if (errno != EINTR) return errno;
  }
}

ssize_t RecvMessage(int sock, void* buf, size_t cap, int* fds, int* nfds, bool nonblocking, bool* truncated) {
  struct iovec iov = {buf, cap};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxMessageFds)];
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  *nfds = 0;
  *truncated = false;
  ssize_t n;
  do {
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | (nonblocking ? MSG_DONTWAIT : 0));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int count = static_cast<int>((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (int i = 0; i < count; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (*nfds < kMaxMessageFds) fds[(*nfds)++] = fd;
      else close(fd);
    }
  }
  if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
    *truncated = true;
    CloseFds(fds, *nfds);
    *nfds = 0;
  }
  return n;
}

int MoveFdAbove(int fd, int min) {
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, min);
  if (moved < 0) return -errno;
  close(fd);
  return moved;
}

bool OpenFds(std::vector<int>* out) {
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return false;
  while (struct dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    int fd = atoi(e->d_name);
    if (fd != dirfd(d)) out->push_back(fd);
  }
  closedir(d);
  return true;
}

std::vector<FdIdentity> OpenFdIdentities() {
  std::vector<int> fds;
  std::vector<FdIdentity> out;
  OpenFds(&fds);
  for (int fd : fds) {
    struct stat st;
    if (fstat(fd, &st) == 0) out.push_back({fd, st.st_dev, st.st_ino});
  }
  return out;
}

void CloseFds(const int* fds, int n) {
  for (int i = 0; i < n; i++) {
    if (fds[i] >= 0) close(fds[i]);
  }
}

}  // namespace ns
