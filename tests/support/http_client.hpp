// A small blocking HTTP/1.1 client for integration tests (services::HttpExchange underneath), with a
// streaming mode that hands the body over as it arrives and can hang up early. Never throws: a failed
// exchange keeps what arrived (status 0 when no response header did) and says why in `error`.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tandem::testing {

struct HttpResult {
  int status = 0;                                            // 0: no response (see error)
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  std::string error;
  std::string Header(const std::string& lower_name) const;
};

using Headers = std::vector<std::pair<std::string, std::string>>;

// One request on a fresh connection to `address` ("127.0.0.1:PORT").
HttpResult HttpCall(const std::string& address, const std::string& method, const std::string& target,
                    const std::string& body = "", const Headers& headers = {},
                    std::chrono::milliseconds timeout = std::chrono::seconds(60));

// The same, passing each piece of the body to `on_data` as it arrives; when it returns false the
// connection is closed at once (a client going away mid-stream).
HttpResult HttpStream(const std::string& address, const std::string& method, const std::string& target,
                      const std::string& body, const Headers& headers,
                      const std::function<bool(std::string_view)>& on_data,
                      std::chrono::milliseconds timeout = std::chrono::seconds(60));

// The `data:` payloads of a server-sent-events body, in order.
std::vector<std::string> SseEvents(const std::string& body);

// The value of an unlabelled series (`name value`) in the Prometheus text at http://address/metrics; -1
// when the endpoint does not answer in `timeout` or does not report it.
double MetricValue(const std::string& address, const std::string& name,
                   std::chrono::milliseconds timeout = std::chrono::seconds(3));

// A free TCP port on 127.0.0.1 (bound, read and released: good enough for a test).
int FreePort();

}  // namespace tandem::testing
