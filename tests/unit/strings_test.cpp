// base's small helpers (strings.hpp, stats.hpp): the one copy every layer uses.
#include <gtest/gtest.h>

#include <vector>

#include "tandem/base/stats.hpp"
#include "tandem/base/strings.hpp"

namespace tandem {
namespace {

TEST(StringsTest, AsciiLowerFoldsOnlyAscii) {
  EXPECT_EQ(AsciiLower("Content-TYPE"), "content-type");
  EXPECT_EQ(AsciiLower("MBit/S \xC3\x89"), "mbit/s \xC3\x89");  // UTF-8 bytes left alone
}

TEST(StringsTest, TrimWhitespaceKeepsTheMiddle) {
  EXPECT_EQ(TrimWhitespace(" \t key value\r\n"), "key value");
  EXPECT_EQ(TrimWhitespace(" \n\f"), "");
  EXPECT_EQ(TrimWhitespace("x"), "x");
}

TEST(StringsTest, ParseIntTakesWholeDecimalsOnly) {
  EXPECT_EQ(ParseInt("42"), 42);
  EXPECT_EQ(ParseInt("-3"), -3);
  for (const char* bad : {"", " 1", "1 ", "+1", "1x", "0x10", "99999999999"}) {
    EXPECT_FALSE(ParseInt(bad).has_value()) << bad;
  }
}

TEST(StringsTest, ParseHostPortTakesNamesV6AndDefaults) {
  auto plain = ParseHostPort("127.0.0.1:8080");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(plain->host, "127.0.0.1");
  EXPECT_EQ(plain->port, 8080);
  auto v6 = ParseHostPort("[::1]:0");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 0);
  auto bare = ParseHostPort("9000", "127.0.0.1");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->host, "127.0.0.1");
  auto colon_only = ParseHostPort(":9000", "0.0.0.0");
  ASSERT_TRUE(colon_only.ok());
  EXPECT_EQ(colon_only->host, "0.0.0.0");
}

TEST(StringsTest, ParseHostPortNamesWhatIsWrong) {
  for (const char* bad : {"9000", ":9000", "host:", "host:port", "host:70000", "host:-1", "host:80x"}) {
    auto parsed = ParseHostPort(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find(bad), std::string::npos) << parsed.status().message();
  }
}

TEST(StatsTest, MedianOfOddEvenAndNone) {
  EXPECT_EQ(Median({3, 1, 2}), 2);
  EXPECT_EQ(Median({4, 1, 3, 2}), 2.5);
  EXPECT_EQ(Median({}), 0);
}

TEST(StatsTest, NearestRankPercentiles) {
  const std::vector<double> sorted = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_EQ(NearestRank(sorted, 50), 5);
  EXPECT_EQ(NearestRank(sorted, 90), 9);
  EXPECT_EQ(NearestRank(sorted, 100), 10);
  EXPECT_EQ(NearestRank(sorted, 1), 1);
  EXPECT_EQ(Percentile({10, 1, 5, 3, 9, 2, 4, 8, 7, 6}, 90), 9);
}

}  // namespace
}  // namespace tandem
