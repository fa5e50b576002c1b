// FNV-1a 64, the hash of model fingerprints (internal to tandem_common).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace tandem {

inline constexpr uint64_t kFnv1a64Offset = 14695981039346656037ULL;

// Continues `hash` over `bytes` (64-bit words, then the tail bytes).
uint64_t Fnv1a64(std::span<const std::byte> bytes, uint64_t hash = kFnv1a64Offset);

}  // namespace tandem
