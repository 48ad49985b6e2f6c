// What the host CPU is, for checking an artifact's target before loading it.
#pragma once

#include <string>
#include <vector>

namespace kd_edge {

// Architecture name as the manifest records it ("x86_64", "aarch64").
std::string host_arch();

// The subset of `features` (Linux names: /proc/cpuinfo flags on x86, AT_HWCAP names elsewhere)
// this CPU does not report.
// Empty when the host's flags cannot be read, so an unknown host is not refused.
std::vector<std::string> missing_cpu_features(const std::vector<std::string>& features);

}  // namespace kd_edge
