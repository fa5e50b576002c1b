// Every kernel table this CPU can run against `ref`: integer dot products exactly, float32 within 1e-5 of
// the sum of the terms' magnitudes, batches and row ranges bit for bit what single calls give. Depends on
// nothing but the kernels library, so that the same test cross-builds for ARM64 and runs under qemu.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "tandem/kernels/kernels.hpp"

namespace tandem::kernels {
namespace {

const Table& Ref() {
  return *AllTables().front();
}

std::vector<float> Gaussian(int64_t count, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> values(static_cast<size_t>(count));
  for (float& v : values) v = normal(rng);
  return values;
}

// Quantized inputs of `rows` rows of n, and the buffers behind them: `view` in natural order (int8
// products), `int4_view` in int4 order.
struct Inputs {
  std::vector<int8_t> values, int4_values;
  std::vector<float> scales, group_sums;
  QuantizedRows view, int4_view;

  Inputs(const float* x, int64_t rows, int64_t n)
      : values(static_cast<size_t>(rows * PaddedLength(n))),
        int4_values(values.size()),
        scales(static_cast<size_t>(rows)),
        group_sums(static_cast<size_t>(rows * Groups(n))) {
    QuantizeActivations(x, rows, n, values.data(), scales.data(), group_sums.data());
    ToInt4Order(values.data(), rows, n, int4_values.data());
    view = {values.data(), scales.data(), group_sums.data(), n};
    int4_view = {int4_values.data(), scales.data(), group_sums.data(), n};
  }
};

struct Int8Matrix {
  std::vector<int8_t> values;
  std::vector<float> scales;
  std::vector<int32_t> row_sums;
  Int8Weights view;

  Int8Matrix(const float* w, int64_t rows, int64_t n)
      : values(static_cast<size_t>(rows * PaddedLength(n))),
        scales(static_cast<size_t>(rows)),
        row_sums(static_cast<size_t>(rows)) {
    QuantizeInt8Rows(w, rows, n, values.data(), scales.data(), row_sums.data());
    view = {values.data(), scales.data(), row_sums.data(), n};
  }
};

struct Int4Matrix {
  std::vector<uint8_t> packed;
  std::vector<float> scales;
  Int4Weights view;
  int64_t n;

  Int4Matrix(const float* w, int64_t rows, int64_t n)
      : packed(static_cast<size_t>(rows * Int4RowBytes(n))),
        scales(static_cast<size_t>(rows * Groups(n))),
        n(n) {
    QuantizeInt4Rows(w, rows, n, packed.data(), scales.data());
    view = {packed.data(), scales.data(), n};
  }

  // q of value i (natural order) of row r, read from the layout kernels.hpp describes.
  int Q(int64_t r, int64_t i) const {
    const int64_t g = i / kGroup, first = g / kInt4Superblock * kInt4Superblock, t = i % kGroup / 4;
    const int64_t line = 4 * Int4SuperblockGroups(n, first);
    const uint8_t byte =
        packed[r * Int4RowBytes(n) + first * kGroup / 2 + t / 2 * line + 4 * (g - first) + i % 4];
    return (t % 2 == 0 ? byte & 0x0F : byte >> 4) - 8;
  }
};

// Row counts and widths: stories260K's 172 and 64, odd sizes that reach every tail, a 768 of the 110M shape.
// 320 and 2048: int4 superblocks of 10 groups and of 16 only.
const std::vector<std::pair<int64_t, int64_t>> kShapes = {
    {1, 1}, {5, 3}, {67, 45}, {64, 172}, {172, 64}, {130, 129}, {48, 768}, {9, 320}, {16, 2048}};
const std::vector<int64_t> kBatches = {1, 2, 3, 5, 8, 17, kMaxBatch};

class KernelTableTest : public ::testing::TestWithParam<const Table*> {
 protected:
  void SetUp() override {
    std::string missing;
    if (!Supported(table(), &missing)) GTEST_SKIP() << "this CPU lacks " << missing;
  }
  const Table& table() const { return *GetParam(); }

  // Runs `product(table, batch, begin, end, y)` over all rows in one call and in two uneven row ranges.
  template <typename Product>
  std::vector<float> Run(const Table& t, int64_t rows, int64_t batch, const Product& product) {
    std::vector<float> y(static_cast<size_t>(batch * rows), NAN), split(y.size(), NAN);
    product(t, batch, 0, rows, y.data());
    const int64_t middle = rows / 3;
    product(t, batch, 0, middle, split.data());
    product(t, batch, middle, rows, split.data());
    for (size_t i = 0; i < y.size(); ++i)
      EXPECT_EQ(std::bit_cast<uint32_t>(y[i]), std::bit_cast<uint32_t>(split[i]));
    return y;
  }
};

// Each batch row is, bit for bit, what the same row gives alone.
void ExpectBatchIsRowsAlone(const std::vector<float>& batched, const std::vector<float>& alone, int64_t rows,
                            int64_t b, const std::string& what) {
  for (int64_t r = 0; r < rows; ++r) {
    ASSERT_EQ(std::bit_cast<uint32_t>(batched[b * rows + r]), std::bit_cast<uint32_t>(alone[r]))
        << what << ": row " << r << " of input " << b;
  }
}

TEST_P(KernelTableTest, Float32MatchesRefWithin1e5OfTheTermsMagnitude) {
  for (const auto& [rows, n] : kShapes) {
    const auto w = Gaussian(rows * n, 1), x = Gaussian(kMaxBatch * n, 2);
    for (const int64_t batch : kBatches) {
      const auto product = [&](const Table& t, int64_t b, int64_t begin, int64_t end, float* y) {
        t.matvec_f32(w.data(), n, x.data(), b, begin, end, y, rows);
      };
      const auto got = Run(table(), rows, batch, product), want = Run(Ref(), rows, batch, product);
      for (int64_t b = 0; b < batch; ++b) {
        for (int64_t r = 0; r < rows; ++r) {
          double magnitude = 0;
          for (int64_t i = 0; i < n; ++i) magnitude += std::fabs(double{w[r * n + i]} * x[b * n + i]);
          ASSERT_LE(std::fabs(got[b * rows + r] - want[b * rows + r]), 1e-5 * magnitude)
              << rows << "x" << n << " batch " << batch << " row " << r << " input " << b;
        }
      }
      const auto alone =
          Run(table(), rows, 1, [&](const Table& t, int64_t, int64_t begin, int64_t end, float* y) {
            t.matvec_f32(w.data(), n, x.data() + (batch - 1) * n, 1, begin, end, y, rows);
          });
      ExpectBatchIsRowsAlone(got, alone, rows, batch - 1, "float32");
    }
  }
}

// int8 outputs are the integer dot product times two scales in a fixed order: equal to ref's bit for bit.
TEST_P(KernelTableTest, Int8EqualsRefExactly) {
  for (const auto& [rows, n] : kShapes) {
    const auto w = Gaussian(rows * n, 3), x = Gaussian(kMaxBatch * n, 4);
    const Int8Matrix matrix(w.data(), rows, n);
    const Inputs inputs(x.data(), kMaxBatch, n);
    for (const int64_t batch : kBatches) {
      const auto product = [&](const Table& t, int64_t b, int64_t begin, int64_t end, float* y) {
        t.matvec_i8(matrix.view, inputs.view, b, begin, end, y, rows);
      };
      const auto got = Run(table(), rows, batch, product), want = Run(Ref(), rows, batch, product);
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(want[i]))
            << rows << "x" << n << " batch " << batch << " output " << i;
      }
    }
  }
}

// The extremes: every product ±127 · ±127, where 16-bit pair sums would saturate if any kernel let them.
TEST_P(KernelTableTest, Int8ExtremesDoNotSaturate) {
  const int64_t rows = 8, n = 256;
  std::vector<float> w(static_cast<size_t>(rows * n)), x(static_cast<size_t>(2 * n));
  for (int64_t i = 0; i < rows * n; ++i) w[i] = (i / n) % 2 == 0 ? 1.0f : ((i % 3) == 0 ? -1.0f : 1.0f);
  for (int64_t i = 0; i < 2 * n; ++i) x[i] = i < n ? 1.0f : ((i % 5) == 0 ? -1.0f : 1.0f);
  const Int8Matrix matrix(w.data(), rows, n);
  const Inputs inputs(x.data(), 2, n);
  std::vector<float> got(static_cast<size_t>(2 * rows)), want(got.size());
  table().matvec_i8(matrix.view, inputs.view, 2, 0, rows, got.data(), rows);
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t r = 0; r < rows; ++r) {
      double exact = 0;
      for (int64_t i = 0; i < n; ++i) exact += double{w[r * n + i]} * x[b * n + i];
      EXPECT_FLOAT_EQ(got[b * rows + r], static_cast<float>(exact)) << "row " << r << " input " << b;
    }
  }
}

// int4: with unit scales every sum is an integer that float holds exactly, so the integer accumulators are
// compared exactly; with real scales, the float sums over groups within 1e-5 of the terms' magnitude.
TEST_P(KernelTableTest, Int4IntegerAccumulatorsEqualRefAndScaledWithin1e5) {
  for (const auto& [rows, n] : kShapes) {
    const auto w = Gaussian(rows * n, 5), x = Gaussian(kMaxBatch * n, 6);
    Int4Matrix matrix(w.data(), rows, n);
    Inputs inputs(x.data(), kMaxBatch, n);
    for (const bool unit_scales : {true, false}) {
      std::vector<float> weight_scales = matrix.scales, input_scales = inputs.scales;
      if (unit_scales) {
        std::fill(matrix.scales.begin(), matrix.scales.end(), 1.0f);
        std::fill(inputs.scales.begin(), inputs.scales.end(), 1.0f);
      }
      for (const int64_t batch : kBatches) {
        const auto product = [&](const Table& t, int64_t b, int64_t begin, int64_t end, float* y) {
          t.matvec_i4(matrix.view, inputs.int4_view, b, begin, end, y, rows);
        };
        const auto got = Run(table(), rows, batch, product), want = Run(Ref(), rows, batch, product);
        for (int64_t b = 0; b < batch; ++b) {
          for (int64_t r = 0; r < rows; ++r) {
            const float g = got[b * rows + r], v = want[b * rows + r];
            if (unit_scales) {
              ASSERT_EQ(g, v) << rows << "x" << n << " batch " << batch << " row " << r << " input " << b;
              continue;
            }
            // The stored q + 8 is at most 16 in magnitude: bound each term by it.
            double magnitude = 0;
            for (int64_t i = 0; i < n; ++i) {
              magnitude += 16.0 * std::fabs(double{matrix.scales[r * Groups(n) + i / kGroup]}) *
                           std::abs(int{inputs.values[b * PaddedLength(n) + i]});
            }
            ASSERT_LE(std::fabs(g - v), 1e-5 * magnitude * inputs.scales[b])
                << rows << "x" << n << " batch " << batch << " row " << r << " input " << b;
          }
        }
        const auto alone =
            Run(table(), rows, 1, [&](const Table& t, int64_t, int64_t begin, int64_t end, float* y) {
              const QuantizedRows last = {inputs.int4_values.data() + (batch - 1) * PaddedLength(n),
                                          inputs.scales.data() + batch - 1,
                                          inputs.group_sums.data() + (batch - 1) * Groups(n), n};
              t.matvec_i4(matrix.view, last, 1, begin, end, y, rows);
            });
        ExpectBatchIsRowsAlone(got, alone, rows, batch - 1, "int4");
      }
      matrix.scales = weight_scales;
      inputs.scales = input_scales;
    }
  }
}

// Activation quantization is bit for bit ref's (int8 outputs are equal across tables only if it is).
TEST_P(KernelTableTest, QuantizesActivationsExactlyAsRef) {
  for (const int64_t n : {1, 7, 8, 31, 64, 172, 768, 2048}) {
    auto x = Gaussian(5 * n, 15);
    std::fill(x.begin() + 3 * n, x.begin() + 4 * n, 0.0f);  // an all-zero row: scale 0
    const int64_t stride = PaddedLength(n), groups = Groups(n);
    std::vector<int8_t> values(static_cast<size_t>(5 * stride), 99), want_values(values.size(), 99);
    std::vector<float> scales(5), want_scales(5), sums(static_cast<size_t>(5 * groups)),
        want_sums(sums.size());
    table().quantize_rows(x.data(), 5, n, values.data(), scales.data(), sums.data());
    QuantizeActivations(x.data(), 5, n, want_values.data(), want_scales.data(), want_sums.data());
    EXPECT_EQ(values, want_values) << n;
    EXPECT_EQ(scales, want_scales) << n;
    EXPECT_EQ(sums, want_sums) << n;
  }
}

TEST_P(KernelTableTest, VectorKernelsMatchRef) {
  for (const int64_t n : {1, 7, 8, 16, 33, 64, 172, 768}) {
    const auto a = Gaussian(n, 7), b = Gaussian(n, 8), gain = Gaussian(n, 9);
    double magnitude = 0;
    for (int64_t i = 0; i < n; ++i) magnitude += std::fabs(double{a[i]} * b[i]);
    EXPECT_NEAR(table().dot(a.data(), b.data(), n), Ref().dot(a.data(), b.data(), n), 1e-5 * magnitude) << n;

    auto y = b, y_ref = b;
    table().axpy(0.37f, a.data(), y.data(), n);
    Ref().axpy(0.37f, a.data(), y_ref.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(y[i], y_ref[i], 1e-6 * (std::fabs(y_ref[i]) + 1)) << n;

    std::vector<float> normed(static_cast<size_t>(n)), normed_ref(normed.size());
    table().rms_norm(a.data(), gain.data(), n, 1e-5f, normed.data());
    Ref().rms_norm(a.data(), gain.data(), n, 1e-5f, normed_ref.data());
    for (int64_t i = 0; i < n; ++i)
      EXPECT_NEAR(normed[i], normed_ref[i], 1e-5 * (std::fabs(normed_ref[i]) + 1e-3));

    auto gate = a, gate_ref = a;
    table().swiglu(gate.data(), b.data(), n);
    Ref().swiglu(gate_ref.data(), b.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(gate[i], gate_ref[i], 1e-6 * (std::fabs(gate_ref[i]) + 1e-3));

    auto soft = a, soft_ref = a;
    table().softmax(soft.data(), n);
    Ref().softmax(soft_ref.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(soft[i], soft_ref[i], 1e-6);
  }
  const auto head = Gaussian(64, 10), cos = Gaussian(32, 11), sin = Gaussian(32, 12);
  for (const auto& [stride, partner] : {std::pair<int64_t, int64_t>{2, 1}, {1, 32}}) {
    auto turned = head, turned_ref = head;
    table().rotate(turned.data(), cos.data(), sin.data(), 32, stride, partner);
    Ref().rotate(turned_ref.data(), cos.data(), sin.data(), 32, stride, partner);
    for (size_t i = 0; i < head.size(); ++i) EXPECT_NEAR(turned[i], turned_ref[i], 1e-5);
  }
}

// The SwiGLU gate of a batch runs over all its rows at once, and of one session over one row: a value's
// bits must not depend on where in the run it sits (a vector body and a scalar tail would differ).
TEST_P(KernelTableTest, SwiGluOfAValueDoesNotDependOnWhereItSits) {
  const int64_t n = 3 * 172;  // three rows of stories260K's hidden width, not a multiple of any vector
  const auto gate = Gaussian(n, 13, 4.0f), up = Gaussian(n, 14);
  auto whole = gate;
  table().swiglu(whole.data(), up.data(), n);
  for (const int64_t piece : {int64_t{1}, int64_t{7}, int64_t{172}}) {
    auto pieces = gate;
    for (int64_t begin = 0; begin < n; begin += piece)
      table().swiglu(pieces.data() + begin, up.data() + begin, std::min(piece, n - begin));
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(std::bit_cast<uint32_t>(whole[i]), std::bit_cast<uint32_t>(pieces[i]))
          << i << " in pieces of " << piece;
  }
}

INSTANTIATE_TEST_SUITE_P(Tables, KernelTableTest, ::testing::ValuesIn(AllTables().begin(), AllTables().end()),
                         [](const auto& info) { return std::string(info.param->name); });

// Quantization, once for all tables: int8 rows and activations padded with zeros and their sums; int4
// groups round-trip within half a step of their scale (a step where +7 clamps), the remainder group of a
// 172-wide row included.
TEST(QuantizationTest, Int8RowsArePaddedAndSummed) {
  const auto w = Gaussian(3 * 172, 13);
  const Int8Matrix matrix(w.data(), 3, 172);
  for (int64_t r = 0; r < 3; ++r) {
    int32_t sum = 0;
    for (int64_t i = 0; i < PaddedLength(172); ++i) {
      const int8_t q = matrix.values[r * PaddedLength(172) + i];
      if (i >= 172) {
        EXPECT_EQ(q, 0);
      }
      EXPECT_GE(q, -127);
      sum += q;
      if (i < 172) {
        EXPECT_NEAR(q * matrix.scales[r], w[r * 172 + i], matrix.scales[r] / 2 + 1e-7);
      }
    }
    EXPECT_EQ(sum, matrix.row_sums[r]);
  }
}

TEST(QuantizationTest, Int4GroupsRoundTripWithinHalfAStepOfTheirScale) {
  const int64_t rows = 4, n = 172;
  const auto w = Gaussian(rows * n, 14);
  const Int4Matrix matrix(w.data(), rows, n);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < PaddedLength(n); ++i) {
      const int64_t g = i / kGroup;
      const int q = matrix.Q(r, i);
      const float scale = matrix.scales[r * Groups(n) + g];
      if (i >= n) {
        EXPECT_EQ(q, 0);
        if (g * kGroup >= n) {
          EXPECT_EQ(scale, 0.0f);
        }
        continue;
      }
      // The extreme is -8 steps; a value of the other sign near its magnitude clamps at +7, a step off.
      const float tolerance = (q == 7 ? std::fabs(scale) : std::fabs(scale) / 2) + 1e-6f;
      EXPECT_NEAR(q * scale, w[r * n + i], tolerance) << "row " << r << " element " << i;
    }
  }
}

// The oracle itself: ref's int4 product over int4-ordered inputs is the natural-order Σ_g scale · Σ q · x.
TEST(QuantizationTest, RefInt4ProductIsTheNaturalOrderSum) {
  for (const int64_t n : {64, 172, 320, 768, 2048}) {
    const int64_t rows = 3, batch = 2;
    const auto w = Gaussian(rows * n, 16), x = Gaussian(batch * n, 17);
    const Int4Matrix matrix(w.data(), rows, n);
    const Inputs inputs(x.data(), batch, n);
    std::vector<float> y(static_cast<size_t>(batch * rows));
    AllTables().front()->matvec_i4(matrix.view, inputs.int4_view, batch, 0, rows, y.data(), rows);
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t r = 0; r < rows; ++r) {
        double want = 0, magnitude = 0;
        for (int64_t i = 0; i < PaddedLength(n); ++i) {
          const double term = matrix.Q(r, i) * double{matrix.scales[r * Groups(n) + i / kGroup]} *
                              inputs.values[b * PaddedLength(n) + i];
          want += term;
          magnitude += std::fabs(term);
        }
        EXPECT_NEAR(y[b * rows + r], want * inputs.scales[b], 1e-5 * magnitude * inputs.scales[b])
            << "n " << n << " row " << r << " input " << b;
      }
    }
  }
}

TEST(TableChoiceTest, NamesTheProblem) {
  std::string error;
  EXPECT_EQ(ChooseTable("ref", &error), AllTables().front());
  EXPECT_EQ(ChooseTable("", &error), SupportedTables().back());
  EXPECT_EQ(ChooseTable("sse9", &error), nullptr);
  EXPECT_NE(error.find("TANDEM_KERNELS=sse9 names no kernel table"), std::string::npos) << error;
  for (const Table* table : AllTables()) {
    error.clear();
    const Table* chosen = ChooseTable(table->name, &error);
    if (Supported(*table)) {
      EXPECT_EQ(chosen, table);
    } else {
      EXPECT_EQ(chosen, nullptr);
      EXPECT_NE(error.find("this CPU lacks"), std::string::npos) << error;
    }
  }
}

}  // namespace
}  // namespace tandem::kernels
