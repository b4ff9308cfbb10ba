#pragma once

// SHA-256 through OpenSSL's EVP API, to check an engine plan against the digest in its sidecar as
// the SDK does.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

struct evp_md_ctx_st;

namespace ipad {

class Sha256 {
 public:
  Sha256();
  void update(const std::uint8_t* data, std::size_t size);
  std::string hex_digest();  // finishes the hash; call once

 private:
  struct Free {
    void operator()(evp_md_ctx_st* ctx) const;
  };
  std::unique_ptr<evp_md_ctx_st, Free> ctx_;
};

// The hex SHA-256 of a file's contents; throws ipad::Error if it cannot be read.
std::string file_sha256(const std::string& path);

}  // namespace ipad
