// The subcommands of `tandem`. Each takes the arguments after its name and returns the exit code.
#pragma once

#include <span>
#include <string>

namespace tandem::cli {

int RunGenerate(std::span<const std::string> args);
int RunMakeModel(std::span<const std::string> args);
int RunBench(std::span<const std::string> args);
int RunBenchSuite(std::span<const std::string> args);
int RunEvalAgreement(std::span<const std::string> args);
int RunPrivacyEval(std::span<const std::string> args);
int RunKeygen(std::span<const std::string> args);
int RunControlSecret(std::span<const std::string> args);  // in keygen_command.cpp
int RunBenchSplit(std::span<const std::string> args);
int RunLoadgen(std::span<const std::string> args);
int RunConvert(std::span<const std::string> args);
int RunChatTemplate(std::span<const std::string> args);
int RunTlsSelfsigned(std::span<const std::string> args);

}  // namespace tandem::cli
