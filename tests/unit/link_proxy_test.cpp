// The link emulator with real TCP through the proxy to an echo server on loopback: round trip ≈ rtt, bulk
// time ≈ bytes / rate, nothing delivered while the link is down, bytes unchanged and in order across
// condition changes, backpressure, EOF, the tandem-link exit codes. The schedule parser and the exact
// delivery times are tested on their own (link_schedule_test, link_model_test on a manual clock).
//
// Timing bounds: the lower ones are strict (the proxy must never deliver early, and every measurement here
// starts before the proxy sees the bytes); the upper ones are 5-10x the expected time, so a loaded 2-core
// machine does not fail them while a proxy that holds bytes for good (or for seconds) still does.
#include "tandem/netem/link_proxy.hpp"
#include "tandem/netem/link_tool.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

namespace tandem::netem {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::microseconds;
using std::chrono::milliseconds;

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// ---- a loopback echo server and a blocking client ------------------------------------------------------

// Echoes every byte back; shuts its sending side down after the client's EOF.
class EchoServer {
 public:
  EchoServer() : acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    Accept();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~EchoServer() {
    ioc_.stop();
    thread_.join();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()); }

 private:
  struct Session {
    explicit Session(tcp::socket s) : socket(std::move(s)) {}
    tcp::socket socket;
    std::vector<char> buffer = std::vector<char>(64 * 1024);
  };

  void Accept() {
    acceptor_.async_accept([this](const boost::system::error_code& error, tcp::socket socket) {
      if (error) return;
      auto session = std::make_shared<Session>(std::move(socket));
      session->socket.set_option(tcp::no_delay(true));
      Echo(session);
      Accept();
    });
  }

  static void Echo(const std::shared_ptr<Session>& session) {
    session->socket.async_read_some(
        asio::buffer(session->buffer), [session](const boost::system::error_code& error, size_t bytes) {
          if (error) {
            boost::system::error_code ignored;
            session->socket.shutdown(tcp::socket::shutdown_send, ignored);
            return;
          }
          asio::async_write(session->socket, asio::buffer(session->buffer.data(), bytes),
                            [session](const boost::system::error_code& write_error, size_t) {
                              if (!write_error) Echo(session);
                            });
        });
  }

  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  std::thread thread_;
};

// A blocking client with deadlines (poll on the descriptor), so a proxy that holds data fails the test
// instead of hanging it.
class Client {
 public:
  explicit Client(uint16_t port) : socket_(ioc_) {
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    socket_.set_option(tcp::no_delay(true));
  }

  void Send(const std::string& data) { asio::write(socket_, asio::buffer(data)); }

  // Up to `bytes`, fewer when the deadline passes or the peer closes first.
  std::string Receive(size_t bytes, milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    std::string received;
    std::vector<char> buffer(64 * 1024);
    while (received.size() < bytes) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) break;
      pollfd fd{socket_.native_handle(), POLLIN, 0};
      if (poll(&fd, 1, static_cast<int>(left)) <= 0) continue;
      const ssize_t n =
          recv(socket_.native_handle(), buffer.data(), std::min(buffer.size(), bytes - received.size()), 0);
      if (n <= 0) {
        eof_ = n == 0;
        break;
      }
      received.append(buffer.data(), static_cast<size_t>(n));
    }
    return received;
  }

  // Writes as much of `data` as the socket takes without blocking, for up to `duration`.
  size_t SendWithoutBlocking(const std::string& data, milliseconds duration) {
    const auto deadline = Clock::now() + duration;
    size_t sent = 0;
    while (sent < data.size() && Clock::now() < deadline) {
      const ssize_t n = send(socket_.native_handle(), data.data() + sent, data.size() - sent, MSG_DONTWAIT);
      if (n > 0) {
        sent += static_cast<size_t>(n);
      } else {
        std::this_thread::sleep_for(milliseconds(5));
      }
    }
    return sent;
  }

  void ShutdownSend() { socket_.shutdown(tcp::socket::shutdown_send); }
  bool eof() const { return eof_; }

 private:
  asio::io_context ioc_;
  tcp::socket socket_;
  bool eof_ = false;
};

std::string RandomBytes(size_t size, uint32_t seed) {
  std::mt19937_64 random(seed);
  std::string bytes(size, '\0');
  for (size_t i = 0; i < size; i += 8) {
    const uint64_t word = random();
    std::memcpy(bytes.data() + i, &word, std::min<size_t>(8, size - i));
  }
  return bytes;
}

std::unique_ptr<LinkProxy> StartProxy(const EchoServer& echo, LinkProxyOptions options) {
  options.target = echo.address();
  auto proxy = LinkProxy::Start(std::move(options));
  EXPECT_TRUE(proxy.ok()) << proxy.status().message();
  return proxy.ok() ? std::move(*proxy) : nullptr;
}

LinkConditions Link(int64_t rate_bps, milliseconds rtt) {
  return {.rate_bps = rate_bps, .rtt = rtt, .up = true};
}

// ---- through the proxy ---------------------------------------------------------------------------------

TEST(LinkProxyTest, RoundTripIsTheRtt) {
  EchoServer echo;
  auto proxy = StartProxy(echo, {.conditions = Link(100'000'000, milliseconds(40))});
  ASSERT_NE(proxy, nullptr);
  Client client(proxy->port());
  std::vector<double> samples;
  for (int i = 0; i < 11; ++i) {
    const std::string message = "ping " + std::to_string(i) + std::string(40, '.');
    const auto start = Clock::now();
    client.Send(message);
    ASSERT_EQ(client.Receive(message.size(), milliseconds(2000)), message);
    samples.push_back(MsSince(start));
  }
  for (double ms : samples) EXPECT_GE(ms, 40.0) << "delivered early";
  std::nth_element(samples.begin(), samples.begin() + 5, samples.end());
  EXPECT_LE(samples[5], 5 * 40.0) << "median round trip";
}

TEST(LinkProxyTest, BulkTakesBytesOverRate) {
  EchoServer echo;
  constexpr int64_t kRate = 8'000'000;
  constexpr size_t kBytes = 256 * 1024;
  auto proxy = StartProxy(echo, {.conditions = Link(kRate, milliseconds(0))});
  ASSERT_NE(proxy, nullptr);
  Client client(proxy->port());
  const std::string data = RandomBytes(kBytes, 1);
  const double nominal_ms = kBytes * 8 * 1000.0 / kRate;        // 262 ms through one direction
  const double last_chunk_ms = 16 * 1024 * 8 * 1000.0 / kRate;  // the echo of the last read comes back
  const auto start = Clock::now();
  client.Send(data);
  const std::string back = client.Receive(kBytes, milliseconds(10000));
  const double elapsed = MsSince(start);
  EXPECT_TRUE(back == data) << "echo differs (" << back.size() << " of " << kBytes << " bytes)";
  EXPECT_GE(elapsed, nominal_ms) << "faster than the link rate";
  EXPECT_LE(elapsed, 5 * (nominal_ms + last_chunk_ms));
}

TEST(LinkProxyTest, HoldsDataWhileDownAndDeliversWhenUp) {
  EchoServer echo;
  auto proxy = StartProxy(echo, {.conditions = Link(100'000'000, milliseconds(20))});
  ASSERT_NE(proxy, nullptr);
  Client client(proxy->port());
  client.Send("hello");
  ASSERT_EQ(client.Receive(5, milliseconds(2000)), "hello");

  proxy->SetConditions({.up = false});
  EXPECT_FALSE(proxy->conditions().up);
  client.Send("held while down");
  EXPECT_EQ(client.Receive(15, milliseconds(300)), "") << "delivered while the link was down";

  const auto up = Clock::now();
  proxy->SetConditions(Link(100'000'000, milliseconds(20)));
  EXPECT_EQ(client.Receive(15, milliseconds(2000)), "held while down");
  EXPECT_GE(MsSince(up), 20.0) << "the held bytes must still cross the link both ways";
}

TEST(LinkProxyTest, PlaysTheSchedule) {
  EchoServer echo;
  const auto before_start = Clock::now();
  auto proxy = StartProxy(echo, {.schedule = *ParseLinkSchedule("250ms:down,10s:100mbit:10ms")});
  ASSERT_NE(proxy, nullptr);
  EXPECT_FALSE(proxy->conditions().up);
  Client client(proxy->port());
  client.Send("early");
  EXPECT_EQ(client.Receive(5, milliseconds(5000)), "early");
  const double elapsed = MsSince(before_start);
  EXPECT_GE(elapsed, 250.0 + 10.0) << "delivered before the link came up";
  EXPECT_LE(elapsed, 10 * (250.0 + 10.0));
  EXPECT_EQ(proxy->conditions(), Link(100'000'000, milliseconds(10)));
}

TEST(LinkProxyTest, LoopsTheSchedule) {
  EchoServer echo;
  auto proxy = StartProxy(echo, {.schedule = *ParseLinkSchedule("60ms:down,60ms:10mbit:0ms"), .loop = true});
  ASSERT_NE(proxy, nullptr);
  int changes = 0;
  bool last_up = proxy->conditions().up;
  const auto start = Clock::now();
  while (MsSince(start) < 10 * 4 * 60 && changes < 4) {
    std::this_thread::sleep_for(milliseconds(5));
    if (proxy->conditions().up != last_up) {
      last_up = !last_up;
      ++changes;
    }
  }
  EXPECT_GE(changes, 4) << "down, up, down, up, down: the schedule repeats";
}

TEST(LinkProxyTest, BytesArriveUnchangedAcrossConditionChanges) {
  EchoServer echo;
  auto proxy = StartProxy(echo, {.conditions = Link(1'000'000'000, milliseconds(1))});
  ASSERT_NE(proxy, nullptr);
  Client client(proxy->port());
  const std::string data = RandomBytes(1 << 20, 2);
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (size_t offset = 0; offset < data.size(); offset += 50'000) {
      client.Send(data.substr(offset, 50'000));
      std::this_thread::sleep_for(milliseconds(10));
    }
  });
  std::thread changer([&] {
    const LinkConditions steps[] = {{.up = false},
                                    Link(50'000'000, milliseconds(5)),
                                    Link(0, milliseconds(0)),
                                    {.up = false},
                                    Link(200'000'000, milliseconds(2)),
                                    Link(20'000'000, milliseconds(30)),
                                    Link(1'000'000'000, milliseconds(1))};
    for (const LinkConditions& step : steps) {
      if (done) break;
      std::this_thread::sleep_for(milliseconds(25));
      proxy->SetConditions(step);
    }
    proxy->SetConditions(Link(1'000'000'000, milliseconds(1)));
  });
  const std::string back = client.Receive(data.size(), milliseconds(4000));
  done = true;
  writer.join();
  changer.join();
  ASSERT_EQ(back.size(), data.size());
  EXPECT_TRUE(back == data) << "bytes changed or reordered";
}

TEST(LinkProxyTest, StopsReadingASideWhoseQueueIsFull) {
  EchoServer echo;
  auto proxy = StartProxy(echo, {.conditions = Link(0, milliseconds(0)), .max_queued_bytes = 256 * 1024});
  ASSERT_NE(proxy, nullptr);
  const std::string data = RandomBytes(48 << 20, 3);
  Client client(proxy->port());
  client.Send("x");
  ASSERT_EQ(client.Receive(1, milliseconds(2000)), "x");
  proxy->SetConditions({.up = false});
  // Without backpressure the proxy would take all of it; with it, the kernel buffers fill and send stalls.
  const size_t accepted = client.SendWithoutBlocking(data, milliseconds(300));
  EXPECT_LT(accepted, size_t{24} << 20);
  proxy->SetConditions(Link(0, milliseconds(0)));
  const std::string back = client.Receive(accepted, milliseconds(4000));
  ASSERT_EQ(back.size(), accepted);
  EXPECT_TRUE(back == data.substr(0, accepted));
}

TEST(LinkProxyTest, PassesTheEndOfStreamOnAfterTheData) {
  EchoServer echo;
  auto proxy = StartProxy(echo, {.conditions = Link(10'000'000, milliseconds(10))});
  ASSERT_NE(proxy, nullptr);
  Client client(proxy->port());
  const std::string data = RandomBytes(20'000, 4);
  client.Send(data);
  client.ShutdownSend();
  EXPECT_TRUE(client.Receive(data.size() + 1, milliseconds(2000)) == data);
  EXPECT_TRUE(client.eof()) << "the echo server's close did not come through";
}

TEST(LinkProxyTest, RefusesNonLoopbackListenAddress) {
  auto proxy = LinkProxy::Start({.listen = "0.0.0.0:0", .target = "127.0.0.1:9"});
  ASSERT_FALSE(proxy.ok());
  EXPECT_EQ(proxy.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(proxy.status().message().find("loopback"), std::string::npos) << proxy.status().message();
}

TEST(LinkProxyTest, ListensOnTheDefaultHostWithAPortOnly) {
  EchoServer echo;
  auto proxy = StartProxy(echo, {.listen = ":0"});
  ASSERT_NE(proxy, nullptr);
  EXPECT_NE(proxy->port(), 0);
  EXPECT_EQ(proxy->address(), "127.0.0.1:" + std::to_string(proxy->port()));
}

// RunLinkProxy blocks the stop signals in its calling thread, so each run gets a thread of its own.
int RunTool(std::vector<std::string> args) {
  int exit_code = -1;
  std::thread([&] { exit_code = RunLinkProxy(args); }).join();
  return exit_code;
}

TEST(LinkToolTest, UsageErrorsExitWithTwo) {
  EXPECT_EQ(RunTool({"--help"}), 0);
  EXPECT_EQ(RunTool({"--rate", "10mbit"}), 2) << "no --target";
  EXPECT_EQ(RunTool({"--target", "127.0.0.1:9", "--schedule", "30s:fast:5ms"}), 2);
  EXPECT_EQ(RunTool({"--target", "127.0.0.1:9", "--schedule", "30s:1mbit:5ms", "--rtt", "5ms"}), 2);
  EXPECT_EQ(RunTool({"--target", "127.0.0.1:9", "--rate", "10mbps"}), 2);
  EXPECT_EQ(RunTool({"--target", "127.0.0.1:9", "--rtt", "40"}), 2);
  EXPECT_EQ(RunTool({"--target", "127.0.0.1:9", "--loop"}), 2);
  EXPECT_EQ(RunTool({"--target", "127.0.0.1:9", "--listen", "0.0.0.0:0"}), 2);
  EXPECT_EQ(RunTool({"--target", "no-port", "--rate", "1mbit"}), 2);
  EXPECT_EQ(RunTool({"--target", "127.0.0.1:9", "--bogus"}), 2);
}

}  // namespace
}  // namespace tandem::netem
