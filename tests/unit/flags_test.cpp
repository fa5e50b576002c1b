#include "tandem/base/flags.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

namespace tandem {
namespace {

struct Parsed {
  std::string model = "default.bin";
  int steps = 256;
  float temperature = 1.0f;
  uint64_t seed = 7;
  bool json = false;
};

Status ParseInto(Parsed& parsed, std::vector<std::string> args, const std::string& env_prefix = "") {
  FlagSet flags("usage", env_prefix);
  flags.String("model", &parsed.model, "model");
  flags.Int("steps", &parsed.steps, "steps");
  flags.Float("temperature", &parsed.temperature, "temperature");
  flags.UInt64("seed", &parsed.seed, "seed");
  flags.Bool("json", &parsed.json, "json");
  return flags.Parse(args);
}

TEST(FlagsTest, ParsesBothSpellingsAndKeepsDefaults) {
  Parsed parsed;
  ASSERT_TRUE(
      ParseInto(parsed, {"--model", "m.bin", "--steps=12", "--json", "--seed", "18446744073709551615"}).ok());
  EXPECT_EQ(parsed.model, "m.bin");
  EXPECT_EQ(parsed.steps, 12);
  EXPECT_TRUE(parsed.json);
  EXPECT_EQ(parsed.seed, 18446744073709551615ULL);
  EXPECT_FLOAT_EQ(parsed.temperature, 1.0f);
}

TEST(FlagsTest, RepeatableFlagCollectsEveryOccurrence) {
  std::vector<std::string> watch;
  FlagSet flags("usage");
  flags.Strings("watch", &watch, "watch");
  ASSERT_TRUE(flags.Parse(std::vector<std::string>{"--watch", "edge=1", "--watch=cloud=2"}).ok());
  EXPECT_EQ(watch, (std::vector<std::string>{"edge=1", "cloud=2"}));
}

TEST(FlagsTest, AListMayBeCommaSeparatedOrRepeatedAndReplacesItsDefault) {
  std::string cloud = "tcp://default:1";
  FlagSet flags("usage");
  flags.List("cloud", &cloud, "tails");
  ASSERT_TRUE(
      flags.Parse(std::vector<std::string>{"--cloud", "tcp://a:1,tcp://b:2", "--cloud=tcp://c:3"}).ok());
  EXPECT_EQ(cloud, "tcp://a:1,tcp://b:2,tcp://c:3");
}

TEST(FlagsTest, RejectsUnknownMissingAndMalformed) {
  Parsed parsed;
  EXPECT_NE(ParseInto(parsed, {"--modle", "x"}).message().find("unknown flag --modle"), std::string::npos);
  EXPECT_FALSE(ParseInto(parsed, {"--steps"}).ok());
  EXPECT_FALSE(ParseInto(parsed, {"--steps", "12x"}).ok());
  EXPECT_FALSE(ParseInto(parsed, {"--temperature", "nan"}).ok());
  EXPECT_FALSE(ParseInto(parsed, {"positional"}).ok());
  EXPECT_FALSE(ParseInto(parsed, {"--json=maybe"}).ok());
}

TEST(FlagsTest, EnvironmentFillsWhatTheCommandLineLeaves) {
  ::setenv("TANDEMTEST_STEPS", "33", 1);
  ::setenv("TANDEMTEST_MODEL", "env.bin", 1);
  Parsed parsed;
  ASSERT_TRUE(ParseInto(parsed, {"--model", "flag.bin"}, "TANDEMTEST").ok());
  EXPECT_EQ(parsed.model, "flag.bin");
  EXPECT_EQ(parsed.steps, 33);
  ::setenv("TANDEMTEST_STEPS", "many", 1);
  EXPECT_FALSE(ParseInto(parsed, {}, "TANDEMTEST").ok());
  ::unsetenv("TANDEMTEST_STEPS");
  ::unsetenv("TANDEMTEST_MODEL");
}

TEST(FlagsTest, HelpIsReported) {
  Parsed parsed;
  FlagSet flags("usage: x");
  flags.Int("steps", &parsed.steps, "how many");
  ASSERT_TRUE(flags.Parse(std::vector<std::string>{"--help"}).ok());
  EXPECT_TRUE(flags.help_requested());
  EXPECT_NE(flags.Usage().find("--steps VALUE"), std::string::npos);
}

TEST(SplitListTest, KeepsEmptyPieces) {
  using Pieces = std::vector<std::string_view>;
  EXPECT_EQ(SplitList("a,b"), (Pieces{"a", "b"}));
  EXPECT_EQ(SplitList("a,,b"), (Pieces{"a", "", "b"}));
  EXPECT_EQ(SplitList("a,"), (Pieces{"a", ""}));
  EXPECT_EQ(SplitList(""), (Pieces{""}));
  EXPECT_EQ(SplitList("30s:down", ':'), (Pieces{"30s", "down"}));
}

}  // namespace
}  // namespace tandem
