#include "host.hpp"

#include <fstream>
#include <set>
#include <sstream>

namespace kd_edge {

std::string host_arch() {
#if defined(__x86_64__) || defined(_M_X64)
  return "x86_64";
#elif defined(__aarch64__)
  return "aarch64";
#else
  return "unknown";
#endif
}

std::vector<std::string> missing_cpu_features(const std::vector<std::string>& features) {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  std::set<std::string> flags;
  while (std::getline(cpuinfo, line)) {
    // x86 says "flags", Arm says "Features"; one core's line is enough.
    if (line.rfind("flags", 0) == 0 || line.rfind("Features", 0) == 0) {
      std::istringstream words(line.substr(line.find(':') + 1));
      std::string word;
      while (words >> word) flags.insert(word);
      break;
    }
  }
  std::vector<std::string> missing;
  if (flags.empty()) return missing;
  for (const auto& f : features)
    if (!flags.count(f)) missing.push_back(f);
  return missing;
}

}  // namespace kd_edge
