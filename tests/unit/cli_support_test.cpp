// The command-line helpers that read files: the prompts of a JSONL file (tandem bench-split --prompts).
#include "cli_support.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "test_env.hpp"

namespace tandem::cli {
namespace {

std::string WriteFile(const testing::TempDir& dir, const std::string& text) {
  const std::string path = (dir / "prompts.jsonl").string();
  std::ofstream(path) << text;
  return path;
}

TEST(CliSupportTest, ReadsThePromptOfEachLine) {
  const testing::TempDir dir;
  const std::string path = WriteFile(
      dir, "{\"prompt\": \"Once upon a time\", \"steps\": 200}\n\n{\"prompt\": \"One day, a cat\"}\n");
  auto prompts = ReadPrompts(path);
  ASSERT_TRUE(prompts.ok()) << prompts.status().message();
  EXPECT_EQ(*prompts, (std::vector<std::string>{"Once upon a time", "One day, a cat"}));
}

TEST(CliSupportTest, NamesTheLineWithoutAPrompt) {
  const testing::TempDir dir;
  auto prompts = ReadPrompts(WriteFile(dir, "{\"prompt\": \"Once\"}\n{\"text\": \"no prompt\"}\n"));
  ASSERT_FALSE(prompts.ok());
  EXPECT_NE(prompts.status().message().find("prompts.jsonl: line 2"), std::string::npos)
      << prompts.status().message();
  EXPECT_FALSE(ReadPrompts(WriteFile(dir, "\n")).ok());
  EXPECT_FALSE(ReadPrompts((dir / "absent.jsonl").string()).ok());
}

}  // namespace
}  // namespace tandem::cli
