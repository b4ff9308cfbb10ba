#include "sha256.hpp"

#include <openssl/evp.h>

#include <fstream>
#include <vector>

#include "error.hpp"

namespace ipad {

void Sha256::Free::operator()(evp_md_ctx_st* ctx) const { EVP_MD_CTX_free(ctx); }

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) {
    throw Error("OpenSSL: cannot start a SHA-256 digest");
  }
}

void Sha256::update(const std::uint8_t* data, std::size_t size) {
  if (size && EVP_DigestUpdate(ctx_.get(), data, size) != 1) {
    throw Error("OpenSSL: SHA-256 update failed");
  }
}

std::string Sha256::hex_digest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx_.get(), digest, &length) != 1) {
    throw Error("OpenSSL: SHA-256 final failed");
  }
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 0xF];
  }
  return out;
}

std::string file_sha256(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open file");
  Sha256 sha;
  std::vector<char> chunk(1 << 22);
  while (in) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    sha.update(reinterpret_cast<const std::uint8_t*>(chunk.data()),
               static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) throw Error(path + ": read error");
  return sha.hex_digest();
}

}  // namespace ipad
