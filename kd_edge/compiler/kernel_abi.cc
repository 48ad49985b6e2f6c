// Linked into every fused model library (kd_edge.compile). The kernel's one call outside itself,
// TVM's error function, binds to this hidden definition, which forwards to a handler the runtime
// installs at load: the library needs no TVM library and no global symbol, and an error inside it
// comes back to the caller as an error.
#include <cstdint>

extern "C" {
__attribute__((visibility("default"))) void (*kd_edge_error_handler)(const char* kind, const char** parts,
                                                                      int32_t n_parts) = nullptr;

__attribute__((visibility("hidden"))) void TVMFFIErrorSetRaisedFromCStrParts(const char* kind, const char** parts,
                                                                            int32_t n_parts) {
  if (kd_edge_error_handler != nullptr) kd_edge_error_handler(kind, parts, n_parts);
}
}
