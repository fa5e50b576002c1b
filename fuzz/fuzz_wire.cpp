// Fuzz target: the wire protocol's parsers, fed what a peer could send. The input is the header frame
// (its first 40 bytes, or all of it when shorter) followed by the payload frame. Every message parser
// sees the payload (the type byte is forced to each parser's type so that no parser waits on the fuzzer
// guessing it), ACTIVATIONS payloads (and a VERIFY's rows after its draft list) go through the codec
// decoder as the tail does, and whatever parses must survive Make -> Parse unchanged.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "fuzz_support.hpp"
#include "tandem/wire/protocol.hpp"

namespace {

using namespace tandem;
using namespace tandem::wire;

// The tail's own limit is configurable; this keeps one decode within a few MB.
constexpr int64_t kMaxActivationValues = 1 << 16;

bool SamePayload(const Message& a, const Message& b) {
  return a.header.type == b.header.type && a.payload == b.payload;
}

void CheckHeader(std::span<const std::byte> frame) {
  auto header = ParseHeader(frame);
  if (!header.ok()) return;
  const HeaderBytes again = SerializeHeader(*header);
  // Every field is carried verbatim, so a parsed header serializes back to the same 40 bytes.
  FUZZ_CHECK(std::memcmp(again.data(), frame.data(), kHeaderBytes) == 0);
}

void CheckHello(const Message& message) {
  auto hello = ParseHello(message);
  if (!hello.ok()) return;
  const Message made = MakeHello(*hello);
  FUZZ_CHECK(made.payload == message.payload);  // every field is carried verbatim
  FUZZ_CHECK(ParseHello(made).ok());
}

void CheckOpen(const Message& message) {
  auto open = ParseOpen(message);
  if (!open.ok()) return;
  FUZZ_CHECK(open->top_logprobs >= 0 && open->top_logprobs <= kMaxTopLogprobs);
  const Message made = MakeOpen(*open);
  FUZZ_CHECK(made.payload == message.payload);
  auto again = ParseOpen(made);
  FUZZ_CHECK(again.ok() && again->codec == open->codec && again->cut == open->cut);
}

void CheckToken(const Message& message) {
  auto token = ParseToken(message);
  if (!token.ok()) return;
  FUZZ_CHECK(token->top_logprobs.size() <= static_cast<size_t>(kMaxTopLogprobs));
  const Message made = MakeToken(*token);
  FUZZ_CHECK(made.payload == message.payload);
  FUZZ_CHECK(ParseToken(made).ok());
}

void CheckError(const Message& message) {
  auto error = ParseError(message);
  if (!error.ok()) return;
  FUZZ_CHECK(error->message.size() <= kMaxErrorMessageBytes);
  (void)ErrorToStatus(*error);
  // Unknown codes become kInternal, so compare a second round trip with the first.
  const Message made = MakeError(*error);
  auto again = ParseError(made);
  FUZZ_CHECK(again.ok() && again->code == error->code && again->message == error->message &&
             again->retryable == error->retryable);
}

void CheckStats(const Message& message) {
  auto stats = ParseStats(message);
  if (!stats.ok()) return;
  const auto& profile = stats->profile;
  FUZZ_CHECK(profile.decode_block_ms.size() <= kMaxProfileBlocks);
  FUZZ_CHECK(profile.prefill.size() <= kMaxProfileBuckets);
  for (const auto& bucket : profile.prefill) {
    FUZZ_CHECK(bucket.block_ms.size() == profile.decode_block_ms.size());
  }
  // Prefill token counts are clamped on parse, so compare the second round trip with the first.
  const Message made = MakeStats(*stats, message.header.sequence);
  auto again = ParseStats(made);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(SamePayload(MakeStats(*again, message.header.sequence), made));
}

// As the tail's worker does once the I/O thread has checked the codec bytes and the shape limits.
void DecodeRows(const Header& header, std::span<const std::byte> payload) {
  auto precision = PrecisionFromWire(header.precision);
  auto compression = CompressionFromWire(header.compression);
  if (!precision.ok() || !compression.ok()) return;
  const ActivationCodec codec{*precision, *compression};
  const int64_t rows = header.rows, cols = header.cols;
  auto values = DecodeActivations(payload, rows, cols, codec, kMaxActivationValues);
  if (!values.ok()) return;
  FUZZ_CHECK(static_cast<int64_t>(values->size()) == rows * cols);
}

// The draft list as the I/O thread checks it, then the rows after it as the worker decodes them.
void CheckVerify(const Message& message) {
  auto verify = ParseVerify(message);
  if (!verify.ok()) return;
  const Header& header = message.header;
  const size_t drafted = verify->draft.size();
  FUZZ_CHECK(drafted >= 1 && drafted <= static_cast<size_t>(kMaxDraftTokens) && drafted < header.rows);
  // The rows are the payload's tail, viewed in place.
  FUZZ_CHECK(verify->activations.data() + verify->activations.size() ==
             message.payload.data() + message.payload.size());
  const Message made =
      MakeVerify(header.session, header.sequence, header.position, header.rows, header.cols, {},
                 Compression::kNone, verify->draft, {verify->activations.begin(), verify->activations.end()});
  FUZZ_CHECK(made.payload == message.payload);
  auto again = ParseVerify(made);
  FUZZ_CHECK(again.ok() && again->draft == verify->draft);
  DecodeRows(header, verify->activations);
}

void CheckVerdict(const Message& message) {
  auto verdict = ParseVerdict(message);
  if (!verdict.ok()) return;
  FUZZ_CHECK(verdict->kept >= 0 && verdict->kept <= kMaxDraftTokens);
  FUZZ_CHECK(verdict->tokens.size() == static_cast<size_t>(verdict->kept) + 1);
  const Message made = MakeVerdict(*verdict);
  FUZZ_CHECK(made.payload == message.payload);  // every field is carried verbatim
  FUZZ_CHECK(ParseVerdict(made).ok());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto* bytes = reinterpret_cast<const std::byte*>(data);
  const size_t header_size = std::min(size, kHeaderBytes);
  const std::span<const std::byte> header_frame(bytes, header_size);
  CheckHeader(header_frame);

  // Message parsers get a header even when the frame did not parse: they must not trust its fields.
  Message message;
  if (auto header = ParseHeader(header_frame); header.ok()) message.header = *header;
  message.payload.assign(bytes + header_size, bytes + size);

  const MessageType original = message.header.type;
  for (MessageType type :
       {MessageType::kHello, MessageType::kOpen, MessageType::kToken, MessageType::kError,
        MessageType::kStats, MessageType::kActivations, MessageType::kVerify, MessageType::kVerdict}) {
    message.header.type = type;
    switch (type) {
      case MessageType::kHello:
        CheckHello(message);
        break;
      case MessageType::kOpen:
        CheckOpen(message);
        break;
      case MessageType::kToken:
        CheckToken(message);
        break;
      case MessageType::kError:
        CheckError(message);
        break;
      case MessageType::kStats:
        CheckStats(message);
        break;
      case MessageType::kActivations:
        DecodeRows(message.header, message.payload);
        break;
      case MessageType::kVerify:
        CheckVerify(message);
        break;
      case MessageType::kVerdict:
        CheckVerdict(message);
        break;
      default:
        break;
    }
  }
  // A parser must refuse a message of another type.
  message.header.type = MessageType::kPing;
  FUZZ_CHECK(!ParseStats(message).ok() && !ParseHello(message).ok() && !ParseVerify(message).ok() &&
             !ParseVerdict(message).ok());
  (void)MessageTypeName(original);
  return 0;
}
