// The body of one streamed response on its way from the producer (a handler thread) to the connection
// that writes it (an io thread): a bounded queue of pieces. It is the ResponseStream a producer gets, and
// the server's side takes the pieces off it. It holds no socket, so it is tested without one; the server
// (http_server.hpp) is its only user in the product.
//
// Threads: Write and ClientGone on the producer's thread; TakeNext, Written and MarkGone on the
// connection's (one at a time). Failure: once the client is gone or the server stops, Write returns false.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "tandem/services/http_server.hpp"

namespace tandem::services {

class ResponseStreamQueue final : public ResponseStream {
 public:
  // Write blocks while at least `max_queued_bytes` are queued unsent (a slow client must not grow memory).
  // `wake` runs on the producer's thread, without the lock, when a piece is queued and no wake is pending:
  // it arranges for the writer to call TakeNext. `server_stopping` must outlive the queue.
  ResponseStreamQueue(size_t max_queued_bytes, const std::atomic<bool>& server_stopping,
                      std::function<void()> wake);

  // ResponseStream, for the producer.
  bool Write(std::string data) override;
  bool ClientGone() const override;

  // The next piece to send, or nullopt when none is queued. Either way the pending wake is spent: the
  // next Write wakes the writer again.
  std::optional<std::string> TakeNext();
  // `bytes` of a taken piece have left: a Write blocked on the limit may go on.
  void Written(size_t bytes);
  // The client is gone: Write returns false from now on, and a blocked Write returns at once.
  void MarkGone();

 private:
  const size_t max_queued_bytes_;
  const std::atomic<bool>& server_stopping_;
  const std::function<void()> wake_;
  mutable std::mutex mutex_;
  std::condition_variable drained_;  // queued_bytes_ went down, or the client is gone
  std::deque<std::string> pieces_;   // guarded by mutex_
  size_t queued_bytes_ = 0;          // pieces_ plus the one being written; guarded by mutex_
  bool wake_pending_ = false;        // a wake was sent and TakeNext has not run since; guarded by mutex_
  std::atomic<bool> gone_ = false;   // set under mutex_
};

}  // namespace tandem::services
