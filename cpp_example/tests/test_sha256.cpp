#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "sha256.hpp"

namespace {

std::string sha256(const std::string& text) {
  ipad::Sha256 sha;
  sha.update(reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
  return sha.hex_digest();
}

}  // namespace

TEST(Sha256, Vectors) {
  EXPECT_EQ(sha256(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256(std::string(1000, 'a')),
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
}

TEST(Sha256, UnevenPieces) {
  ipad::Sha256 pieces;  // the same digest when fed in uneven pieces
  for (int i = 0; i < 1000; i += 7) {
    const std::string chunk(std::min(7, 1000 - i), 'a');
    pieces.update(reinterpret_cast<const std::uint8_t*>(chunk.data()), chunk.size());
  }
  EXPECT_EQ(pieces.hex_digest(), sha256(std::string(1000, 'a')));
}
