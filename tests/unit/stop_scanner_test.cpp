// StopScanner: text goes out as soon as no stop string can start in it, the text ends before the first
// match, and what was held back comes out at the end when nothing matched.
#include "tandem/edge_agent/stop_scanner.hpp"

#include <gtest/gtest.h>

namespace tandem::edge_agent {
namespace {

// Feeds `pieces`; the concatenated output until a match, and whether one matched.
std::pair<std::string, bool> Scan(StopScanner& scanner, const std::vector<std::string>& pieces) {
  std::string out;
  bool stopped = false;
  for (const std::string& piece : pieces) {
    out += scanner.Add(piece, stopped);
    if (stopped) return {out, true};
  }
  return {out + scanner.Flush(), false};
}

TEST(StopScannerTest, WithoutStopStringsEveryPieceIsFinalAtOnce) {
  StopScanner scanner({});
  bool stopped = false;
  EXPECT_EQ(scanner.Add("Once", stopped), "Once");
  EXPECT_EQ(scanner.Add(" upon", stopped), " upon");
  EXPECT_FALSE(stopped);
  EXPECT_EQ(scanner.Flush(), "");
  EXPECT_EQ(scanner.text(), "Once upon");
}

TEST(StopScannerTest, HoldsBackTheLongestStopLessOneByte) {
  StopScanner scanner({"Lily", "zz"});  // holds 3 bytes
  bool stopped = false;
  EXPECT_EQ(scanner.Add("Once", stopped), "O");
  EXPECT_EQ(scanner.Add(" upon", stopped), "nce u");
  // " Li" could start "Lily": it waits.
  EXPECT_EQ(scanner.Add(" Li", stopped), "pon");
  EXPECT_FALSE(stopped);
  // The match ends the text before it; the held-back space goes out.
  EXPECT_EQ(scanner.Add("ly was", stopped), " ");
  EXPECT_TRUE(stopped);
  EXPECT_EQ(scanner.text(), "Once upon ");
}

TEST(StopScannerTest, AStopStringAcrossPiecesIsNeverSentInPart) {
  StopScanner scanner({"the end"});
  bool stopped = false;
  std::string sent;
  for (const char* piece : {"and that was ", "th", "e ", "en", "d", " of it"}) {
    sent += scanner.Add(piece, stopped);
    EXPECT_EQ(sent.find("the"), std::string::npos) << "part of the stop string went out: " << sent;
    if (stopped) break;
  }
  EXPECT_TRUE(stopped);
  EXPECT_EQ(sent, "and that was ");
}

TEST(StopScannerTest, TheEarliestMatchOfAnyStopWins) {
  StopScanner scanner({"cat", "a"});
  const auto [text, stopped] = Scan(scanner, {"the dog and the cat"});
  EXPECT_TRUE(stopped);
  EXPECT_EQ(text, "the dog ");
}

TEST(StopScannerTest, AMatchAtTheStartLeavesNoText) {
  StopScanner scanner({"Hello"});
  const auto [text, stopped] = Scan(scanner, {"Hel", "lo world"});
  EXPECT_TRUE(stopped);
  EXPECT_EQ(text, "");
  EXPECT_EQ(scanner.text(), "");
}

TEST(StopScannerTest, FlushReleasesTheHeldBackTailWhenNothingMatched) {
  StopScanner scanner({"zzz"});
  bool stopped = false;
  EXPECT_EQ(scanner.Add("abc", stopped), "a");
  EXPECT_EQ(scanner.Add("d", stopped), "b");
  EXPECT_EQ(scanner.Flush(), "cd");
  EXPECT_FALSE(stopped);
  EXPECT_EQ(scanner.text(), "abcd");
  const auto [text, matched] = Scan(scanner, {});
  EXPECT_EQ(text, "");
  EXPECT_FALSE(matched);
}

}  // namespace
}  // namespace tandem::edge_agent
