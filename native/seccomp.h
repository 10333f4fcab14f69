// Installs the seccomp filter that lib/seccomp compiled before any clone. The child only
// installs it, last.
#pragma once
#include <cstdint>
#include <vector>

#include "failure.h"

namespace ns {

// `program` holds struct sock_filter[] bytes; empty means no filter.
bool InstallSeccomp(const std::vector<uint8_t>& program, Failure* f);

}  // namespace ns
