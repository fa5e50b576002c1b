#include "tandem/base/status.hpp"

#include <gtest/gtest.h>

namespace tandem {
namespace {

Result<int> Half(int value) {
  if (value % 2 != 0) return InvalidArgument(std::to_string(value) + " is odd");
  return value / 2;
}

Result<int> Quarter(int value) {
  TANDEM_ASSIGN_OR_RETURN(int half, Half(value));
  TANDEM_ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

Status CheckEven(int value) {
  TANDEM_RETURN_IF_ERROR(Half(value).status());
  return Status::Ok();
}

TEST(StatusTest, ResultCarriesValueOrError) {
  EXPECT_EQ(*Quarter(8), 2);
  const auto odd = Quarter(6);
  ASSERT_FALSE(odd.ok());
  EXPECT_EQ(odd.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(odd.status().message(), "3 is odd");
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_FALSE(CheckEven(5).ok());
}

TEST(StatusTest, ContextPrefixesMessage) {
  const Status status = NotFound("no such file").WithContext("loading block 3");
  EXPECT_EQ(status.message(), "loading block 3: no such file");
  EXPECT_EQ(status.ToString(), "NOT_FOUND: loading block 3: no such file");
  EXPECT_TRUE(Status::Ok().WithContext("ignored").ok());
}

}  // namespace
}  // namespace tandem
