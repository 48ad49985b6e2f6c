#include "host.hpp"

#include <fstream>
#include <set>
#include <sstream>

#if defined(__linux__) && !defined(__x86_64__)
#include <sys/auxv.h>
#endif

namespace kd_edge {

std::string host_arch() {
#if defined(__x86_64__) || defined(_M_X64)
  return "x86_64";
#elif defined(__aarch64__)
  return "aarch64";
#elif defined(__arm__)
  return "armv7";
#elif defined(__riscv) && __riscv_xlen == 64
  return "riscv64";
#else
  return "unknown";
#endif
}

namespace {

// The CPU's feature names as Linux reports them. x86: /proc/cpuinfo's "flags". Arm and RISC-V:
// the AT_HWCAP bits (what /proc/cpuinfo's "Features" prints, and what qemu-user emulates).
std::set<std::string> host_features() {
  std::set<std::string> flags;
#if defined(__x86_64__)
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) == 0) {  // one core's line is enough
      std::istringstream words(line.substr(line.find(':') + 1));
      std::string word;
      while (words >> word) flags.insert(word);
      break;
    }
  }
#elif defined(__linux__)
  const unsigned long hwcap = getauxval(AT_HWCAP);
  struct Bit { const char* name; unsigned bit; };
#if defined(__aarch64__)
  static const Bit bits[] = {{"fp", 0},       {"asimd", 1},    {"aes", 3},     {"pmull", 4},  {"sha1", 5},
                             {"sha2", 6},     {"crc32", 7},    {"atomics", 8}, {"fphp", 9},   {"asimdhp", 10},
                             {"asimdrdm", 12}, {"lrcpc", 15},  {"asimddp", 20}};
#elif defined(__arm__)
  static const Bit bits[] = {{"vfp", 6}, {"neon", 12}, {"vfpv3", 13}, {"vfpv4", 16}, {"idiva", 17}, {"idivt", 18}};
#elif defined(__riscv)
  static const Bit bits[] = {{"a", 0}, {"c", 2}, {"d", 3}, {"f", 5}, {"i", 8}, {"m", 12}, {"v", 21}};
#else
  static const Bit bits[] = {{"", 0}};
#endif
  for (const Bit& b : bits)
    if (*b.name && (hwcap >> b.bit) & 1UL) flags.insert(b.name);
#endif
  return flags;
}

}  // namespace

std::vector<std::string> missing_cpu_features(const std::vector<std::string>& features) {
  static const std::set<std::string> flags = host_features();
  std::vector<std::string> missing;
  if (flags.empty()) return missing;
  for (const auto& f : features)
    if (!flags.count(f)) missing.push_back(f);
  return missing;
}

}  // namespace kd_edge
