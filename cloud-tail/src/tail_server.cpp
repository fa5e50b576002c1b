#include "tandem/cloud_tail/tail_server.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "step_executor.hpp"
#include "tail_metrics.hpp"
#include "tandem/base/log.hpp"
#include "tandem/cloud_tail/session_table.hpp"
#include "tandem/cloud_tail/step_batcher.hpp"
#include "tandem/engine/transformer.hpp"
#include "tandem/wire/curve.hpp"

namespace tandem::cloud_tail {
namespace {

using wire::ErrorCode;
using wire::MessageType;

constexpr const char* kRepliesEndpoint = "inproc://tandem-tail-replies";
constexpr auto kPollInterval = std::chrono::milliseconds(100);
constexpr auto kSweepInterval = std::chrono::seconds(1);
constexpr int kMaxMessagesPerWakeup = 64;  // then serve the other socket: neither side starves

// One worker's queue: sessions pinned to it run in arrival order.
struct WorkQueue {
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<Job> jobs;
};

wire::Message ErrorMessage(uint64_t session, uint64_t sequence, ErrorCode code, std::string text,
                           bool retryable = false) {
  return wire::MakeError({.session = session,
                          .sequence = sequence,
                          .code = code,
                          .retryable = retryable,
                          .message = std::move(text)});
}

std::string BindAddress(std::string bind) {
  // ZeroMQ spells "any free port" as '*'; accept the usual ":0" too.
  if (bind.size() > 2 && bind.ends_with(":0")) bind.replace(bind.size() - 1, 1, "*");
  return bind;
}

ServedModel Served(const Transformer& model) {
  const ModelConfig& config = model.config();
  return {.n_layers = config.n_layers,
          .dim = config.dim,
          .seq_len = config.seq_len,
          .kv_dim = config.kv_dim(),
          .held = model.held_blocks(),
          .holds_head = model.holds_head()};
}

SessionLimits Limits(const TailServerOptions& options) {
  return {.max_rows = options.max_rows,
          .max_sessions = options.max_sessions,
          .max_kv_bytes = options.max_kv_bytes,
          .max_peers = options.max_peers,
          .idle_timeout = options.idle_timeout,
          .workers = options.workers};
}

TailServerOptions Normalized(TailServerOptions options, const Transformer& model) {
  if (options.max_rows <= 0) options.max_rows = model.config().seq_len;
  return options;
}

wire::Hello DescribeTail(const Transformer& model, uint64_t fingerprint, const TailServerOptions& options) {
  wire::Hello hello = wire::DescribeModel(model.config(), fingerprint, options.block_fingerprints);
  hello.max_rows = static_cast<uint32_t>(options.max_rows);
  hello.max_sessions = static_cast<uint32_t>(options.max_sessions);
  hello.max_payload_bytes = static_cast<uint64_t>(options.limits.max_message_bytes);
  const BlockRange held = model.held_blocks();
  if (held.first != 0 || held.last != model.n_layers() || !model.holds_head()) {
    hello.held_first = static_cast<uint32_t>(held.first);
    hello.held_last = static_cast<uint32_t>(held.last);
  }
  return hello;
}

}  // namespace

// The sockets and threads around the session table (I/O thread) and the executor (workers).
class TailServer::Impl {
 public:
  Impl(std::shared_ptr<const Transformer> model, uint64_t fingerprint, TailServerOptions options,
       std::shared_ptr<prometheus::Registry> registry)
      : options_(Normalized(std::move(options), *model)),
        registry_(std::move(registry)),
        metrics_(*registry_),
        hello_(DescribeTail(*model, fingerprint, options_)),
        sessions_(Served(*model), Limits(options_), SteadyClock::Instance(),
                  [this](int64_t sessions, int64_t kv_bytes) {
                    metrics_.sessions.Set(static_cast<double>(sessions));
                    metrics_.kv_bytes.Set(static_cast<double>(kv_bytes));
                  }),
        executor_(std::move(model), metrics_),
        queues_(static_cast<size_t>(std::max(0, options_.workers))) {}

  ~Impl() { Stop(); }

  Status Start() {
    try {
      if (!options_.security.insecure) {
        const auto count_auth = [this](bool admitted, const std::string& key, const std::string& peer) {
          CountAuth(admitted, key, peer);
        };
        TANDEM_ASSIGN_OR_RETURN(zap_,
                                ZapAuthenticator::Start(context_, options_.allowed_clients, count_auth));
      }
      router_ = zmq::socket_t(context_, zmq::socket_type::router);
      TANDEM_RETURN_IF_ERROR(ConfigureSocket(router_, options_.security, options_.limits, /*server=*/true));
      router_.bind(BindAddress(options_.bind));
      endpoint_ = router_.get(zmq::sockopt::last_endpoint);
      replies_ = zmq::socket_t(context_, zmq::socket_type::pull);
      replies_.set(zmq::sockopt::linger, 0);
      replies_.bind(kRepliesEndpoint);
    } catch (const zmq::error_t& error) {
      return Unavailable("cannot bind the tail at '" + options_.bind + "': " + error.what());
    }
    for (size_t i = 0; i < queues_.size(); ++i) workers_.emplace_back([this, i] { RunWorker(queues_[i]); });
    io_thread_ = std::thread([this] { RunIo(); });
    return Status::Ok();
  }

  void Stop() {
    if (stopping_.exchange(true)) return;
    for (WorkQueue& queue : queues_) {
      const std::lock_guard lock(queue.mutex);
      queue.ready.notify_all();
    }
    for (std::thread& worker : workers_) worker.join();
    if (io_thread_.joinable()) io_thread_.join();
    router_.close();
    replies_.close();
    zap_.reset();
    context_.close();
  }

  void BeginDrain() { sessions_.BeginDrain(); }

  wire::TailStats Stats() const {
    return {.workers = static_cast<uint32_t>(std::max(1, options_.workers)),
            .sessions = static_cast<uint32_t>(sessions_.open_sessions()),
            .queue_depth = static_cast<uint32_t>(std::max(0, queued_.load())),
            .utilization = utilization_.load(),
            .free_kv_bytes = std::max<int64_t>(0, options_.max_kv_bytes - sessions_.kv_bytes()),
            .profile = options_.profile};
  }
  const std::string& endpoint() const { return endpoint_; }
  int64_t open_sessions() const { return sessions_.open_sessions(); }
  int64_t kv_cache_bytes() const { return sessions_.kv_bytes(); }

 private:
  // ---- I/O thread -------------------------------------------------------------------------------------

  void RunIo() {
    if (options_.workers == 0) at::init_num_threads();  // inline steps run here
    std::array<zmq::pollitem_t, 2> items = {
        {{router_.handle(), 0, ZMQ_POLLIN, 0}, {replies_.handle(), 0, ZMQ_POLLIN, 0}}};
    auto last_sweep = std::chrono::steady_clock::now();
    while (!stopping_.load()) {
      try {
        zmq::poll(items.data(), items.size(), kPollInterval);
        for (int i = 0; i < kMaxMessagesPerWakeup; ++i) {
          std::vector<zmq::message_t> frames = ReceiveMultipart(replies_);
          if (frames.empty()) break;
          ForwardReply(frames);
        }
        for (int i = 0; i < kMaxMessagesPerWakeup; ++i) {
          std::vector<zmq::message_t> frames = ReceiveMultipart(router_);
          if (frames.empty()) break;
          HandleIncoming(frames);
        }
      } catch (const zmq::error_t& error) {
        if (error.num() == ETERM) return;
        Log(LogLevel::kError, "cloud", "socket error", {{"error", error.what()}});
      }
      if (const auto now = std::chrono::steady_clock::now(); now - last_sweep > kSweepInterval) {
        Sweep(now - last_sweep);
        last_sweep = now;
      }
    }
  }

  // Once a second: idle sessions freed, and the workers' busy fraction since the last sweep (the load a
  // planner inflates this tail's compute by).
  void Sweep(std::chrono::steady_clock::duration elapsed) {
    metrics_.sessions_expired.Increment(sessions_.ExpireIdle());
    const int64_t busy = executor_.TakeBusyMicroseconds();
    const double capacity_us =
        std::chrono::duration<double, std::micro>(elapsed).count() * std::max(1, options_.workers);
    utilization_ = static_cast<float>(std::clamp(busy / capacity_us, 0.0, 1.0));
  }

  void CountAuth(bool admitted, const std::string& key, const std::string& peer) {
    metrics_.CountAuth(admitted);
    if (!admitted) {
      Log(LogLevel::kWarn, "cloud", "client refused by CURVE allow-list",
          {{"client_key", key}, {"peer", peer}});
    }
  }

  void Reply(const std::string& peer, const wire::Message& message) {
    if (message.header.type == MessageType::kError) {
      if (auto error = wire::ParseError(message); error.ok()) metrics_.CountError(error->code);
    }
    metrics_.CountOut(message.header.type);
    (void)SendMessage(router_, message, peer);  // a vanished peer's replies are dropped by ZeroMQ
  }

  void Refuse(const std::string& peer, const wire::ErrorReply& refusal) {
    Reply(peer, wire::MakeError(refusal));
  }

  // A worker's [peer + serial][header][payload]: settle the session's bookkeeping, then pass it on verbatim.
  // The serial tells the session that sent the step from a later one with the same id (CLOSE, then OPEN
  // again while the step ran): only the former's bookkeeping may change.
  void ForwardReply(std::vector<zmq::message_t>& frames) {
    if (frames.size() != 3 || frames[0].size() < sizeof(uint64_t)) return;
    const std::string route = frames[0].to_string();
    const std::string peer = route.substr(0, route.size() - sizeof(uint64_t));
    uint64_t serial = 0;
    std::memcpy(&serial, route.data() + peer.size(), sizeof(serial));
    auto message = ParseFrames(std::span(frames).subspan(1), SIZE_MAX);
    if (!message.ok()) return;
    SettleReply(peer, serial, *message);
  }

  // A step's TOKEN, ROWS, VERDICT or ERROR (or a failed OPEN's): the session's bookkeeping, then the reply.
  void SettleReply(const std::string& peer, uint64_t serial, const wire::Message& message) {
    sessions_.Settle(peer, serial, message);
    Reply(peer, message);
  }

  void HandleIncoming(std::vector<zmq::message_t>& frames) {
    if (frames.size() < 2) return;  // nothing but a routing id
    const std::string peer = frames[0].to_string();
    auto parsed =
        ParseFrames(std::span(frames).subspan(1), static_cast<size_t>(options_.limits.max_message_bytes));
    if (!parsed.ok()) {
      Reply(peer, ErrorMessage(0, 0, ErrorCode::kBadFrame, parsed.status().message()));
      return;
    }
    wire::Message& message = *parsed;
    const wire::Header& header = message.header;
    if (header.version != wire::kProtocolVersion) {
      Reply(peer, ErrorMessage(header.session, header.sequence, ErrorCode::kVersionMismatch,
                               "protocol version " + std::to_string(header.version) +
                                   " is not supported; this tail speaks version " +
                                   std::to_string(wire::kProtocolVersion)));
      return;
    }
    metrics_.CountIn(header.type);
    if (header.type == MessageType::kHello) return HandleHello(peer, message);
    if (header.type == MessageType::kPing) return HandlePing(peer, message);
    if (!sessions_.TouchPeer(peer)) {
      Reply(peer, ErrorMessage(header.session, header.sequence, ErrorCode::kHandshakeRequired,
                               "send HELLO first on this connection"));
      return;
    }
    switch (header.type) {
      case MessageType::kOpen:
        return HandleOpen(peer, std::move(message));
      case MessageType::kActivations:
      case MessageType::kVerify:
        return HandleStep(peer, std::move(message));
      case MessageType::kClose:
        return sessions_.Close(peer, header.session);
      case MessageType::kStats:
        return Reply(peer, wire::MakeStats(Stats(), header.sequence));
      default:
        Reply(peer,
              ErrorMessage(header.session, header.sequence, ErrorCode::kUnsupported,
                           std::string(wire::MessageTypeName(header.type)) + " is not accepted by a tail"));
    }
  }

  void HandleHello(const std::string& peer, const wire::Message& message) {
    auto hello = wire::ParseHello(message);
    if (!hello.ok()) {
      Reply(peer, ErrorMessage(0, 0, ErrorCode::kBadFrame, hello.status().message()));
      return;
    }
    if (Status same = wire::CheckSameModel(*hello, hello_); !same.ok()) {
      Log(LogLevel::kWarn, "cloud", "HELLO refused: another model",
          {{"edge_fingerprint", std::to_string(hello->fingerprint)},
           {"tail_fingerprint", std::to_string(hello_.fingerprint)},
           {"error", same.message()}});
      Reply(peer, ErrorMessage(0, 0, ErrorCode::kFingerprintMismatch, same.message()));
      return;
    }
    if (auto refusal = sessions_.AdmitPeer(peer)) return Refuse(peer, *refusal);
    Reply(peer, wire::MakeHello(hello_));
  }

  void HandlePing(const std::string& peer, const wire::Message& message) {
    if (message.payload.size() > wire::kMaxPingBytes) {
      Reply(peer,
            ErrorMessage(0, message.header.sequence, ErrorCode::kTooLarge, "PING payload over 64 bytes"));
      return;
    }
    wire::Message pong = message;
    pong.header.type = MessageType::kPong;
    Reply(peer, pong);
  }

  // OPEN is checked and booked here; its KV cache is allocated by the session's worker, ahead of its steps
  // in the same queue, so the I/O thread never spends time zeroing memory. No reply unless refused.
  void HandleOpen(const std::string& peer, wire::Message message) {
    const uint64_t id = message.header.session;
    auto open = wire::ParseOpen(message);
    if (!open.ok()) return Reply(peer, ErrorMessage(id, 0, ErrorCode::kBadArgument, open.status().message()));
    Admission opened = sessions_.Open(peer, id, *open);
    if (opened.refusal) return Refuse(peer, *opened.refusal);
    Dispatch(peer, Job{std::move(opened.session), std::move(message)});
  }

  // ACTIVATIONS or VERIFY: checked and booked here, computed by the session's worker.
  void HandleStep(const std::string& peer, wire::Message message) {
    Admission step = sessions_.AcceptStep(peer, message);
    if (step.refusal) return Refuse(peer, *step.refusal);
    if (step.resend) {
      // The edge lost the reply, or it is late: the cached one answers, or (still computing) none.
      metrics_.resends.Increment();
      if (step.cached_reply) Reply(peer, *step.cached_reply);
      return;
    }
    Dispatch(peer, Job{std::move(step.session), std::move(message)});
  }

  // To the session's worker; with --workers 0 run here: no hand-over to a worker and back, at the price of
  // holding every other message meanwhile.
  void Dispatch(const std::string& peer, Job job) {
    if (options_.workers == 0) {
      const uint64_t serial = job.session->serial;
      if (job.opens()) {
        if (auto error = executor_.Open(*job.session)) SettleReply(peer, serial, *error);
        return;
      }
      std::vector<Job> jobs;
      jobs.push_back(std::move(job));
      SettleReply(peer, serial, executor_.Run(jobs).front());
      return;
    }
    const bool step = !job.opens();
    WorkQueue& queue = queues_[static_cast<size_t>(job.session->worker)];
    {
      const std::lock_guard lock(queue.mutex);
      queue.jobs.push_back(std::move(job));
    }
    if (step) {
      metrics_.queue_depth.Increment();
      ++queued_;
    }
    queue.ready.notify_one();
  }

  // ---- workers ----------------------------------------------------------------------------------------

  void RunWorker(WorkQueue& queue) {
    // OpenMP's thread count is per thread: take the process's (--threads) before the first product.
    at::init_num_threads();
    zmq::socket_t replies(context_, zmq::socket_type::push);
    replies.set(zmq::sockopt::linger, 0);
    replies.connect(kRepliesEndpoint);
    StepBatcher batcher({.max_batch = options_.max_batch, .max_wait = options_.max_batch_wait});
    while (true) {
      std::vector<Job> jobs = TakeJobs(queue, batcher);
      if (jobs.empty()) return;  // stopping
      if (jobs.front().opens()) {
        if (auto error = executor_.Open(*jobs.front().session)) SendBack(replies, jobs.front(), *error);
        continue;
      }
      metrics_.queue_depth.Decrement(static_cast<double>(jobs.size()));
      queued_ -= static_cast<int>(jobs.size());
      const std::vector<wire::Message> answers = executor_.Run(jobs);
      for (size_t i = 0; i < jobs.size(); ++i) SendBack(replies, jobs[i], answers[i]);
    }
  }

  // The jobs this worker runs next, as the batcher chooses them, waiting for more while it says so. Empty
  // when stopping.
  std::vector<Job> TakeJobs(WorkQueue& queue, StepBatcher& batcher) {
    std::unique_lock lock(queue.mutex);
    queue.ready.wait(lock, [&] { return stopping_.load() || !queue.jobs.empty(); });
    if (stopping_.load()) return {};
    batcher.Begin(queue.jobs, SteadyClock::Instance().Now());
    while (batcher.ShouldWait(SteadyClock::Instance().Now()) && !stopping_.load()) {
      const bool woken = queue.ready.wait_until(lock, batcher.deadline()) == std::cv_status::no_timeout;
      batcher.Collect(queue.jobs);  // after a timeout too: a step may have come meanwhile
      if (!woken) break;
    }
    return batcher.Finish();
  }

  // To the I/O thread, routed by the peer and the session's serial (see ForwardReply).
  static void SendBack(zmq::socket_t& replies, const Job& job, const wire::Message& answer) {
    std::string route = job.session->peer;
    route.append(reinterpret_cast<const char*>(&job.session->serial), sizeof(uint64_t));
    (void)SendMessage(replies, answer, route);
  }

  TailServerOptions options_;
  std::shared_ptr<prometheus::Registry> registry_;
  TailMetrics metrics_;
  wire::Hello hello_;
  SessionTable sessions_;  // I/O thread only, but for its counts
  StepExecutor executor_;

  zmq::context_t context_;
  std::unique_ptr<ZapAuthenticator> zap_;
  zmq::socket_t router_;
  zmq::socket_t replies_;
  std::string endpoint_;

  std::vector<WorkQueue> queues_;
  std::vector<std::thread> workers_;
  std::thread io_thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> queued_{0};
  std::atomic<float> utilization_{0};
};

TailServer::TailServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TailServer::~TailServer() = default;

Result<std::unique_ptr<TailServer>> TailServer::Start(std::shared_ptr<const Transformer> model,
                                                      uint64_t fingerprint, TailServerOptions options,
                                                      std::shared_ptr<prometheus::Registry> registry) {
  if (!options.security.insecure && options.allowed_clients.empty()) {
    return InvalidArgument("a CURVE tail needs at least one allowed client key (--allow-clients)");
  }
  auto impl = std::make_unique<Impl>(std::move(model), fingerprint, std::move(options), std::move(registry));
  TANDEM_RETURN_IF_ERROR(impl->Start());
  return std::unique_ptr<TailServer>(new TailServer(std::move(impl)));
}

const std::string& TailServer::endpoint() const {
  return impl_->endpoint();
}
int64_t TailServer::open_sessions() const {
  return impl_->open_sessions();
}
int64_t TailServer::kv_cache_bytes() const {
  return impl_->kv_cache_bytes();
}
wire::TailStats TailServer::Stats() const {
  return impl_->Stats();
}
void TailServer::BeginDrain() {
  impl_->BeginDrain();
}
void TailServer::Stop() {
  impl_->Stop();
}

}  // namespace tandem::cloud_tail
