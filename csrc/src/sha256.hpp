#pragma once

#include <cstddef>
#include <string>

namespace kd_edge {

// Lower-case hex SHA-256 of `size` bytes (sha256_file, in the public header, hashes a file).
std::string sha256_bytes(const void* data, std::size_t size);

}  // namespace kd_edge
