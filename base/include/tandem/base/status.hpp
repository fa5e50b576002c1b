// Status and Result<T>: how library code reports failure (no exceptions across component seams).
//
// Codes map to HTTP meaning so the service layer can turn any error into a status with one table.
// Errors gain context as they travel up: status.WithContext("loading block 3") prefixes the message.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace tandem {

enum class StatusCode {
  kOk,
  kInvalidArgument,    // 400: the caller sent something malformed (bad flag, bad file, bad frame)
  kUnauthenticated,    // 401
  kNotFound,           // 404
  kResourceExhausted,  // 429/503: a limit or a queue is full
  kUnavailable,        // 503: a peer or the link is down
  kDeadlineExceeded,   // 504
  kInternal,           // 500: a bug or an unexpected library failure
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns a copy whose message is "context: message".
  Status WithContext(std::string_view context) const;
  // "INVALID_ARGUMENT: message" (or "OK").
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string message) {
  return {StatusCode::kInvalidArgument, std::move(message)};
}
inline Status NotFound(std::string message) {
  return {StatusCode::kNotFound, std::move(message)};
}
inline Status ResourceExhausted(std::string message) {
  return {StatusCode::kResourceExhausted, std::move(message)};
}
inline Status Unavailable(std::string message) {
  return {StatusCode::kUnavailable, std::move(message)};
}
inline Status Internal(std::string message) {
  return {StatusCode::kInternal, std::move(message)};
}
inline Status DeadlineExceeded(std::string message) {
  return {StatusCode::kDeadlineExceeded, std::move(message)};
}

// A value or the error that explains why there is none. Library APIs use Result<T> (below: the error is a
// Status); a layer whose errors carry more than a code and a message (the edge's OpenAI error objects) uses
// this with its own error type, so that there is one shape of "value or error" in the code base.
template <typename T, typename Error>
class [[nodiscard]] ValueOr {
 public:
  ValueOr(T value) : state_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  ValueOr(Error error) : state_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(state_); }
  // The error; only when !ok().
  const Error& error() const { return std::get<Error>(state_); }

  T& value() & { return std::get<T>(state_); }
  const T& value() const& { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Error> state_;
};

// A value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Result : public ValueOr<T, Status> {
 public:
  Result(T value) : ValueOr<T, Status>(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : ValueOr<T, Status>(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!this->error().ok() && "a Result holding a Status must hold an error");
  }

  // OK when there is a value.
  const Status& status() const {
    static const Status kOk;
    return this->ok() ? kOk : this->error();
  }
};

}  // namespace tandem

#define TANDEM_CONCAT_INNER(a, b) a##b
#define TANDEM_CONCAT(a, b) TANDEM_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function when `expr` (a Status) is not OK.
#define TANDEM_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::tandem::Status tandem_status_ = (expr);        \
    if (!tandem_status_.ok()) return tandem_status_; \
  } while (false)

// `lhs = value of expr` (a Result<T>), or returns its Status from the enclosing function. `lhs` is often a
// declaration ("const auto x"), so it cannot be parenthesized.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define TANDEM_ASSIGN_OR_RETURN(lhs, expr)                   \
  auto TANDEM_CONCAT(tandem_result_, __LINE__) = (expr);     \
  if (!TANDEM_CONCAT(tandem_result_, __LINE__).ok())         \
    return TANDEM_CONCAT(tandem_result_, __LINE__).status(); \
  lhs = std::move(TANDEM_CONCAT(tandem_result_, __LINE__)).value()
// NOLINTEND(bugprone-macro-parentheses)
