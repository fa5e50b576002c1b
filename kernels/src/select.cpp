// Which table runs: the CPU's features (CPUID through GCC's probe on x86-64; on AArch64, which always has
// NEON, the kernel's hardware capabilities for the dot product),
// and TANDEM_KERNELS to force one.
#include <array>
#include <cstdio>
#include <cstdlib>

#if defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#include "tables.hpp"

namespace tandem::kernels {
namespace {

#if defined(__x86_64__)
constexpr std::array<const Table*, 3> kAll = {&kRefTable, &kAvx2Table, &kAvx512Table};
#elif defined(__aarch64__)
constexpr std::array<const Table*, 3> kAll = {&kRefTable, &kNeonTable, &kNeonDotprodTable};
#else
constexpr std::array<const Table*, 1> kAll = {&kRefTable};
#endif

// The CPU features a table needs that this CPU lacks, comma-separated; empty when it can run it.
std::string MissingFeatures(const Table& table) {
  std::string missing;
#if defined(__x86_64__)
  // Callers may run during static initialization, possibly before libgcc's own probe.
  __builtin_cpu_init();
  const auto need = [&](bool present, const char* feature) {
    if (present) return;
    if (!missing.empty()) missing += ", ";
    missing += feature;
  };
  if (&table == &kAvx2Table || &table == &kAvx512Table) {
    need(__builtin_cpu_supports("avx2"), "avx2");
    need(__builtin_cpu_supports("fma"), "fma");
  }
  if (&table == &kAvx512Table) {
    need(__builtin_cpu_supports("avx512f"), "avx512f");
    need(__builtin_cpu_supports("avx512bw"), "avx512bw");
    need(__builtin_cpu_supports("avx512vl"), "avx512vl");
    need(__builtin_cpu_supports("avx512vnni"), "avx512vnni");
  }
#elif defined(__aarch64__)
  if (&table == &kNeonDotprodTable && (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) == 0) missing = "asimddp";
#else
  (void)table;
#endif
  return missing;
}

}  // namespace

std::span<const Table* const> AllTables() {
  return kAll;
}

bool Supported(const Table& table, std::string* missing) {
  std::string lacking = MissingFeatures(table);
  if (missing != nullptr) *missing = lacking;
  return lacking.empty();
}

std::span<const Table* const> SupportedTables() {
  static const auto supported = [] {
    std::array<const Table*, kAll.size()> tables{};
    size_t count = 0;
    for (const Table* table : kAll) {
      if (Supported(*table)) tables[count++] = table;
    }
    return std::pair{tables, count};
  }();
  return {supported.first.data(), supported.second};
}

const Table* ChooseTable(std::string_view requested, std::string* error) {
  if (requested.empty()) return SupportedTables().back();
  std::string names;
  for (const Table* table : kAll) {
    names += names.empty() ? table->name : std::string(", ") + table->name;
    if (requested != table->name) continue;
    std::string missing;
    if (Supported(*table, &missing)) return table;
    *error = "TANDEM_KERNELS=" + std::string(requested) + ": this CPU lacks " + missing;
    return nullptr;
  }
  *error =
      "TANDEM_KERNELS=" + std::string(requested) + " names no kernel table of this build (" + names + ")";
  return nullptr;
}

const Table& Active() {
  static const Table* const active = [] {
    const char* requested = std::getenv("TANDEM_KERNELS");
    std::string error;
    const Table* table = ChooseTable(requested != nullptr ? requested : "", &error);
    if (table == nullptr) {
      std::fprintf(stderr, "tandem: %s\n", error.c_str());
      std::exit(2);
    }
    return table;
  }();
  return *active;
}

}  // namespace tandem::kernels
