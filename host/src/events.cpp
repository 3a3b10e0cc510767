#include <cozy/host/events.hpp>

namespace cozy::host {

void JsonLinesSink::emit(const Event& event) {
  nlohmann::json line = {{"type", event.type}, {"data", event.data}};
  std::string text = line.dump();
  std::lock_guard<std::mutex> lock(mutex_);
  out_ << text << '\n';
  out_.flush();
}

void LogLinesSink::emit(const Event& event) {
  if (event.type != "log" || event.data.value("level", "") == "debug") return;
  std::lock_guard<std::mutex> lock(mutex_);
  out_ << event.data.value("level", "") << ": node " << event.data.value("node", "") << ": "
       << event.data.value("message", "") << '\n';
}

void ProgressBarSink::emit(const Event& event) {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto& d = event.data;
  if (event.type == "execution_start") {
    total_ = d.value("nodes", 0);
    done_ = 0;
  } else if (event.type == "execution_cached") {
    done_ += d.value("nodes", nlohmann::json::array()).size();
  } else if (event.type == "executing" && d.contains("node") && d["node"].is_null()) {
    return;  // the end of the run, after its terminal event
  } else if (event.type == "executing") {
    current_ = d.value("node", "") + " " + d.value("title", "");
    value_ = max_ = 0;
  } else if (event.type == "progress") {
    value_ = d.value("value", 0LL);
    max_ = d.value("max", 0LL);
    if (d.contains("text")) current_ = d.value("node", "") + " " + d.value("text", "");
  } else if (event.type == "executed") {
    ++done_;
  } else if (event.type == "log" && d.value("level", "") != "debug") {
    out_ << "\r\033[K" << d.value("level", "") << ": node " << d.value("node", "") << ": " << d.value("message", "")
         << '\n';
  } else if (event.type == "execution_success" || event.type == "execution_interrupted" ||
             event.type == "execution_error") {
    // The failures themselves are printed by the caller, every one of them.
    if (event.type == "execution_success") done_ = total_;
    value_ = max_ = 0;
    current_ = event.type == "execution_success" ? "done" : event.type == "execution_error" ? "failed" : "interrupted";
    last_draw_ = {};
    draw();
    out_ << '\n';
    out_.flush();
    return;
  }
  draw();
}

void ProgressBarSink::draw() {
  auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(50)) return;  // don't flood a slow terminal
  last_draw_ = now;
  constexpr int width = 24;
  double fraction = total_ ? static_cast<double>(done_) / static_cast<double>(total_) : 0.0;
  if (max_ > 0 && total_ && done_ < total_)
    fraction += static_cast<double>(value_) / static_cast<double>(max_) / static_cast<double>(total_);
  int filled = static_cast<int>(fraction * width + 0.5);
  out_ << "\r\033[K[" << std::string(static_cast<std::size_t>(filled), '#')
       << std::string(static_cast<std::size_t>(width - filled), '.') << "] " << done_ << "/" << total_ << " nodes";
  if (max_ > 0) out_ << "  " << current_ << " " << value_ << "/" << max_;
  else if (!current_.empty()) out_ << "  " << current_;
  out_.flush();
}

}  // namespace cozy::host
