#include "library.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kd_edge/solver.hpp"
#include "sha256.hpp"

namespace kd_edge {
namespace {

// Model libraries are well under a megabyte; a larger "library" is refused before reading it all.
constexpr off_t kMaxLibraryBytes = off_t{256} << 20;

std::string os_error(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// An anonymous file: memfd_create where the kernel has it, else an unlinked temporary file.
int anonymous_file() {
#ifdef SYS_memfd_create
  const int memfd = static_cast<int>(::syscall(SYS_memfd_create, "kd_edge_model", 1U /* MFD_CLOEXEC */));
  if (memfd >= 0) return memfd;
#endif
  const char* dir = std::getenv("TMPDIR");
  std::string name = std::string(dir && *dir ? dir : "/tmp") + "/kd_edge_model_XXXXXX";
  std::vector<char> buf(name.begin(), name.end());
  buf.push_back('\0');
  const int fd = ::mkstemp(buf.data());
  if (fd >= 0) ::unlink(buf.data());
  return fd;
}

bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

VerifiedLibrary::VerifiedLibrary(const std::string& path, const std::string& expected_sha256) : origin_(path) {
  const int in = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) throw Error(ErrorKind::kNotFound, "library named in manifest.json is missing: " + path);
  struct stat st {};
  if (::fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(in);
    throw Error(ErrorKind::kNotFound, "library named in manifest.json is not a regular file: " + path);
  }
  if (st.st_size > kMaxLibraryBytes) {
    ::close(in);
    throw Error(ErrorKind::kInvalidArtifact, path + " is " + std::to_string(st.st_size) +
                                                 " bytes, larger than a model library can be");
  }
  std::vector<char> bytes;
  bytes.reserve(static_cast<std::size_t>(st.st_size));
  char block[1 << 16];
  for (;;) {
    const ssize_t n = ::read(in, block, sizeof block);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string why = os_error("read");
      ::close(in);
      throw Error(ErrorKind::kInvalidArtifact, "cannot read " + path + ": " + why);
    }
    if (n == 0) break;
    bytes.insert(bytes.end(), block, block + n);
    if (static_cast<off_t>(bytes.size()) > kMaxLibraryBytes) {
      ::close(in);
      throw Error(ErrorKind::kInvalidArtifact, path + " is larger than a model library can be");
    }
  }
  ::close(in);
  const std::string digest = sha256_bytes(bytes.data(), bytes.size());
  if (digest != expected_sha256)
    throw Error(ErrorKind::kInvalidArtifact, path + " has sha256 " + digest + " but manifest.json expects " +
                                                 expected_sha256 + ": the library was changed or damaged");
  fd_ = anonymous_file();
  if (fd_ < 0 || !write_all(fd_, bytes.data(), bytes.size())) {
    const std::string why = os_error("anonymous file");
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    throw Error(ErrorKind::kRuntime, "cannot stage " + path + " for loading: " + why);
  }
  load_path_ = "/proc/self/fd/" + std::to_string(fd_);
}

VerifiedLibrary::~VerifiedLibrary() {
  if (fd_ >= 0) ::close(fd_);
}

LoadedLibrary::LoadedLibrary(const VerifiedLibrary& library) {
  handle_ = ::dlopen(library.load_path().c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle_ == nullptr) {
    const char* why = ::dlerror();
    throw Error(ErrorKind::kInvalidArtifact,
                "cannot load " + library.origin() + ": " + (why ? std::string(why) : std::string("dlopen failed")));
  }
}

LoadedLibrary::~LoadedLibrary() {
  if (handle_ != nullptr) ::dlclose(handle_);
}

void* LoadedLibrary::symbol(const char* name) const noexcept { return ::dlsym(handle_, name); }

}  // namespace kd_edge
