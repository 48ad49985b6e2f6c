// The artifact's shared library, checked and loaded from one read of its bytes.
#pragma once

#include <string>

namespace kd_edge {

// Reads the library once, checks those bytes against the manifest's sha256 and keeps them in an
// anonymous in-memory file (memfd), which is what gets loaded: the bytes that were hashed are
// the bytes that run, whatever happens to the path meanwhile, and each load is a new file, so
// the dynamic loader's cache (keyed by path and inode) never hands back an older library.
class VerifiedLibrary {
 public:
  VerifiedLibrary(const std::string& path, const std::string& expected_sha256);
  ~VerifiedLibrary();
  VerifiedLibrary(const VerifiedLibrary&) = delete;
  VerifiedLibrary& operator=(const VerifiedLibrary&) = delete;

  // A path that opens the verified copy (/proc/self/fd/N), for a loader that wants a path.
  const std::string& load_path() const noexcept { return load_path_; }
  const std::string& origin() const noexcept { return origin_; }  // the artifact's file, for messages

 private:
  int fd_ = -1;
  std::string load_path_, origin_;
};

// dlopen of a VerifiedLibrary (RTLD_NOW | RTLD_LOCAL); closed with the object.
class LoadedLibrary {
 public:
  explicit LoadedLibrary(const VerifiedLibrary& library);
  ~LoadedLibrary();
  LoadedLibrary(const LoadedLibrary&) = delete;
  LoadedLibrary& operator=(const LoadedLibrary&) = delete;
  void* symbol(const char* name) const noexcept;  // nullptr when the library has none

 private:
  void* handle_ = nullptr;
};

}  // namespace kd_edge
