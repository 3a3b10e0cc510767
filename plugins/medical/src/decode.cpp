// DICOM in with GDCM: every transfer syntax it decodes, a series folder
// sorted along the slice normal.
//
// Files are decoded in a child process: GDCM, as Debian builds it, aborts on
// some files (an assertion in its attribute code, e.g. on RT Dose files) and
// a decoder can crash on a damaged stream; the child's death is an error for
// that file, never the host's. The child runs no ATen (its OpenMP threads do
// not survive fork) and sends the voxels and tags back through a pipe.
#include "decode.hpp"

#include <cozy/error.hpp>

#include <gdcmImageReader.h>
#include <gdcmStringFilter.h>
#include <gdcmTrace.h>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <sstream>

namespace cozy::medical {

namespace {

namespace fs = std::filesystem;

// The tags a derived file keeps from its source (patient, study, equipment).
const std::vector<gdcm::Tag> kKept = {
    {0x0010, 0x0010}, {0x0010, 0x0020}, {0x0010, 0x0030}, {0x0010, 0x0040}, {0x0008, 0x0020}, {0x0008, 0x0030},
    {0x0008, 0x0050}, {0x0008, 0x0080}, {0x0008, 0x0090}, {0x0008, 0x1030}, {0x0008, 0x0070}, {0x0018, 0x0015},
    {0x0020, 0x000D}, {0x0020, 0x0010}, {0x0028, 0x0301}};  // ... and burned-in annotation

std::string tag_key(const gdcm::Tag& t) {
  char text[16];
  std::snprintf(text, sizeof text, "%04x,%04x", t.GetGroup(), t.GetElement());
  return text;
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  std::size_t a = 0;
  while (a < s.size() && s[a] == ' ') ++a;
  return s.substr(a);
}

std::vector<double> numbers(const std::string& text) {
  std::vector<double> values;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, '\\');) {
    try {
      values.push_back(std::stod(item));
    } catch (const std::exception&) {
    }
  }
  return values;
}


// One sample of GDCM's decoded buffer, as double.
double sample(const char* p, gdcm::PixelFormat::ScalarType type) {
  switch (type) {
    case gdcm::PixelFormat::UINT8: return static_cast<uint8_t>(*p);
    case gdcm::PixelFormat::INT8: return static_cast<int8_t>(*p);
    case gdcm::PixelFormat::UINT16: { uint16_t v; std::memcpy(&v, p, 2); return v; }
    case gdcm::PixelFormat::INT16: { int16_t v; std::memcpy(&v, p, 2); return v; }
    case gdcm::PixelFormat::UINT32: { uint32_t v; std::memcpy(&v, p, 4); return v; }
    case gdcm::PixelFormat::INT32: { int32_t v; std::memcpy(&v, p, 4); return v; }
    case gdcm::PixelFormat::FLOAT32: { float v; std::memcpy(&v, p, 4); return v; }
    default: { double v; std::memcpy(&v, p, 8); return v; }
  }
}

// PALETTE COLOR: the stored index through the red, green and blue tables
// (PS3.3 C.7.6.3.1.5), as 0-255 (16-bit entries / 257).
Decoded apply_palette(const Decoded& indexed, const gdcm::DataSet& ds, const std::string& where) {
  if (indexed.channels != 1) throw Error(where + "a palette image with more than one sample a pixel");
  auto bytes = [&](uint16_t element) -> std::vector<uint8_t> {
    const gdcm::Tag tag(0x0028, element);
    if (!ds.FindDataElement(tag)) throw Error(where + "its palette lacks (0028," + std::to_string(element) + ")");
    const gdcm::ByteValue* value = ds.GetDataElement(tag).GetByteValue();
    if (!value) throw Error(where + "its palette is empty or segmented (not read)");
    return std::vector<uint8_t>(value->GetPointer(), value->GetPointer() + value->GetLength());
  };
  Decoded out = indexed;
  out.channels = 3;
  const int64_t plane = indexed.rows * indexed.cols;
  out.voxels.assign(static_cast<std::size_t>(indexed.slices * 3 * plane), 0.0f);
  const uint16_t descriptors[3] = {0x1101, 0x1102, 0x1103}, tables[3] = {0x1201, 0x1202, 0x1203};
  for (int c = 0; c < 3; ++c) {
    const std::vector<uint8_t> d = bytes(descriptors[c]);
    if (d.size() < 6) throw Error(where + "its palette descriptor is short");
    auto u16 = [](const uint8_t* p) { return static_cast<unsigned>(p[0] | p[1] << 8); };
    const int64_t entries = u16(d.data()) == 0 ? 65536 : u16(d.data());
    const int64_t first = u16(d.data() + 2);
    const unsigned bits = u16(d.data() + 4);
    const std::vector<uint8_t> table = bytes(tables[c]);
    const int64_t entry_bytes = bits > 8 || static_cast<int64_t>(table.size()) >= 2 * entries ? 2 : 1;
    if (static_cast<int64_t>(table.size()) < entries * entry_bytes) throw Error(where + "its palette table is short");
    for (int64_t f = 0; f < indexed.slices; ++f)
      for (int64_t i = 0; i < plane; ++i) {
        const int64_t index = std::clamp<int64_t>(static_cast<int64_t>(indexed.voxels[f * plane + i]) - first, 0, entries - 1);
        const double value = entry_bytes == 2 ? u16(table.data() + 2 * index) / (bits > 8 ? 257.0 : 1.0) : table[index];
        out.voxels[static_cast<std::size_t>((f * 3 + c) * plane + i)] = static_cast<float>(value);
      }
  }
  return out;
}

Decoded decode_file(const fs::path& file) {
  const std::string where = "cannot read " + file.string() + ": ";
  if (!fs::is_regular_file(file)) throw Error(where + "no such file");
  gdcm::ImageReader reader;
  reader.SetFileName(file.c_str());
  if (!reader.Read()) throw Error(where + "not a DICOM image GDCM can read (no pixel data, or not DICOM)");
  const gdcm::Image& image = reader.GetImage();
  const gdcm::PhotometricInterpretation::PIType pi = image.GetPhotometricInterpretation();
  const bool palette = pi == gdcm::PhotometricInterpretation::PALETTE_COLOR;
  const gdcm::TransferSyntax syntax = image.GetTransferSyntax();
  if (syntax.GetSwapCode() == gdcm::SwapCode::BigEndian && image.GetPixelFormat().GetBitsAllocated() > 16)
    throw Error(where + "32-bit big-endian pixels are not read (GDCM swaps them as 16-bit words)");
  if (syntax == gdcm::TransferSyntax::RLELossless && image.GetPixelFormat().GetSamplesPerPixel() == 3 &&
      image.GetPixelFormat().GetBitsAllocated() > 8)
    throw Error(where + "RLE colour of more than 8 bits a sample is not read (GDCM orders its segments otherwise)");
  if (palette && syntax.GetSwapCode() == gdcm::SwapCode::BigEndian)
    throw Error(where + "palette colour in big endian is not read");
  const bool ybr = pi == gdcm::PhotometricInterpretation::YBR_FULL || pi == gdcm::PhotometricInterpretation::YBR_FULL_422;
  const bool encapsulated = image.GetTransferSyntax().IsEncapsulated();
  if (pi == gdcm::PhotometricInterpretation::YBR_FULL_422 && !encapsulated)
    throw Error(where + "uncompressed YBR_FULL_422 (chroma shared by pixel pairs) is not read");
  const unsigned int* dims = image.GetDimensions();
  Decoded out;
  out.cols = dims[0], out.rows = dims[1];
  out.slices = image.GetNumberOfDimensions() > 2 ? dims[2] : 1;
  const gdcm::PixelFormat& pf = image.GetPixelFormat();
  out.channels = pf.GetSamplesPerPixel();
  if (out.channels != 1 && out.channels != 3)
    throw Error(where + std::to_string(out.channels) + " samples per pixel (1 or 3 are read)");
  if (out.cols <= 0 || out.rows <= 0 || out.slices <= 0) throw Error(where + "an empty image");
  const gdcm::PixelFormat::ScalarType type = pf.GetScalarType();
  int64_t bytes = 0;
  switch (type) {
    case gdcm::PixelFormat::UINT8: case gdcm::PixelFormat::INT8: bytes = 1; break;
    case gdcm::PixelFormat::UINT16: case gdcm::PixelFormat::INT16: bytes = 2; break;
    case gdcm::PixelFormat::UINT32: case gdcm::PixelFormat::INT32: case gdcm::PixelFormat::FLOAT32: bytes = 4; break;
    case gdcm::PixelFormat::FLOAT64: bytes = 8; break;
    default: throw Error(where + "pixels of " + std::to_string(pf.GetBitsAllocated()) + " bits allocated are not read");
  }
  const int64_t count = out.slices * out.channels * out.rows * out.cols;
  // A file's decoded pixels are held twice here (as stored and as float):
  // 1 GiB of them at most, which no single file of a real study reaches.
  if (count > (int64_t{1} << 28) || static_cast<int64_t>(image.GetBufferLength()) > (int64_t{1} << 30))
    throw Error(where + "more than 2^28 samples or 1 GiB of pixels (" + std::to_string(out.cols) + " x " +
                std::to_string(out.rows) + " x " + std::to_string(out.slices) + ")");
  std::vector<char> buffer(image.GetBufferLength());
  if (static_cast<int64_t>(buffer.size()) < count * bytes) throw Error(where + "fewer pixel bytes than its size says");
  if (!image.GetBuffer(buffer.data()))
    throw Error(where + "GDCM cannot decode its pixels (transfer syntax " +
                std::string(gdcm::TransferSyntax::GetTSString(image.GetTransferSyntax())) + ")");
  const double slope = image.GetSlope(), intercept = image.GetIntercept();
  const bool planar = out.channels == 3 && image.GetPlanarConfiguration() == 1;
  out.voxels.resize(static_cast<std::size_t>(count));
  const int64_t plane = out.rows * out.cols;
  for (int64_t f = 0; f < out.slices; ++f)
    for (int64_t c = 0; c < out.channels; ++c)
      for (int64_t i = 0; i < plane; ++i) {
        const int64_t from = planar ? (f * out.channels + c) * plane + i : (f * plane + i) * out.channels + c;
        out.voxels[static_cast<std::size_t>((f * out.channels + c) * plane + i)] =
            static_cast<float>(sample(buffer.data() + from * bytes, type) * slope + intercept);
      }
  if (ybr && !encapsulated) {  // YBR_FULL, as stored: to RGB (PS3.3 C.7.6.3.1.2)
    for (int64_t f = 0; f < out.slices; ++f)
      for (int64_t i = 0; i < plane; ++i) {
        float* y = &out.voxels[static_cast<std::size_t>(f * 3 * plane + i)];
        const double Y = y[0], cb = y[plane] - 128.0, cr = y[2 * plane] - 128.0;
        y[0] = static_cast<float>(std::clamp(Y + 1.402 * cr, 0.0, 255.0));
        y[plane] = static_cast<float>(std::clamp(Y - 0.344136 * cb - 0.714136 * cr, 0.0, 255.0));
        y[2 * plane] = static_cast<float>(std::clamp(Y + 1.772 * cb, 0.0, 255.0));
      }
  }
  if (palette) out = apply_palette(out, reader.GetFile().GetDataSet(), where);
  out.monochrome1 = image.GetPhotometricInterpretation() == gdcm::PhotometricInterpretation::MONOCHROME1;
  const double* spacing = image.GetSpacing();
  const double* origin = image.GetOrigin();
  const double* cosines = image.GetDirectionCosines();
  out.spacing = {spacing[0], spacing[1], image.GetNumberOfDimensions() > 2 ? spacing[2] : 1.0};
  out.origin = {origin[0], origin[1], origin[2]};
  for (int i = 0; i < 6; ++i) out.orientation[i] = cosines[i];
  gdcm::StringFilter strings;
  strings.SetFile(reader.GetFile());
  const gdcm::DataSet& ds = reader.GetFile().GetDataSet();
  auto text = [&](uint16_t g, uint16_t e) {
    const gdcm::Tag tag(g, e);
    return ds.FindDataElement(tag) ? trimmed(strings.ToString(tag)) : std::string();
  };
  // GDCM gives a 2-D image's origin without its z: the position as the file has it.
  if (const std::vector<double> ipp = numbers(text(0x0020, 0x0032)); ipp.size() == 3) out.origin = {ipp[0], ipp[1], ipp[2]};
  out.modality = text(0x0008, 0x0060);
  const std::vector<double> centers = numbers(text(0x0028, 0x1050)), widths = numbers(text(0x0028, 0x1051));
  for (std::size_t i = 0; i < centers.size() && i < widths.size(); ++i) out.windows.emplace_back(centers[i], widths[i]);
  for (const gdcm::Tag& tag : kKept)
    if (ds.FindDataElement(tag)) out.tags[tag_key(tag)] = trimmed(strings.ToString(tag));
  out.series = text(0x0020, 0x000E);
  try {
    out.instance = std::stoi(text(0x0020, 0x0013));
  } catch (const std::exception&) {
  }
  out.files = {file.string()};
  return out;
}

// The slices of a folder: one series, sorted along the normal of its
// orientation by ImagePositionPatient (InstanceNumber where they tie).
Decoded decode_series(const fs::path& folder) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(folder))
    if (entry.is_regular_file()) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  std::vector<Decoded> slices;
  std::vector<double> positions;
  int refused = 0;
  for (const fs::path& file : files) {
    try {
      slices.push_back(decode_file(file));
    } catch (const Error&) {
      ++refused;  // not an image of the series (a DICOMDIR, a report, another file)
    }
  }
  if (slices.empty())
    throw Error("cannot read " + folder.string() + ": no DICOM image in the folder" +
                (refused ? " (" + std::to_string(refused) + " files that are not)" : std::string()));
  std::map<std::string, int> series;
  for (const auto& s : slices) ++series[s.series];
  if (series.size() > 1) {
    std::string list;
    for (const auto& [uid, n] : series) list += (list.empty() ? "" : ", ") + uid + " (" + std::to_string(n) + " files)";
    throw Error("cannot read " + folder.string() + ": it holds " + std::to_string(series.size()) + " series (" + list +
                "); give the folder of one");
  }
  auto position = [](const Decoded& d) {
    const auto& o = d.orientation;
    const double n[3] = {o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]};
    return n[0] * d.origin[0] + n[1] * d.origin[1] + n[2] * d.origin[2];
  };
  std::stable_sort(slices.begin(), slices.end(), [&](const Decoded& a, const Decoded& b) {
    const double pa = position(a), pb = position(b);
    return pa != pb ? pa < pb : a.instance < b.instance;
  });
  Decoded out = slices.front();
  out.voxels.clear();
  out.files.clear();
  out.slices = 0;
  for (const Decoded& s : slices) {
    if (s.channels != out.channels || s.rows != out.rows || s.cols != out.cols)
      throw Error("cannot read " + folder.string() + ": " + s.files.front() + " is not the size of the other slices");
    out.voxels.insert(out.voxels.end(), s.voxels.begin(), s.voxels.end());
    out.files.push_back(s.files.front());
    out.slices += s.slices;
  }
  if (slices.size() > 1) {
    std::vector<double> gaps;
    for (std::size_t i = 1; i < slices.size(); ++i) gaps.push_back(position(slices[i]) - position(slices[i - 1]));
    std::nth_element(gaps.begin(), gaps.begin() + static_cast<std::ptrdiff_t>(gaps.size() / 2), gaps.end());
    if (gaps[gaps.size() / 2] > 0) out.spacing[2] = gaps[gaps.size() / 2];
  }
  return out;
}

// --------------------------------------------------------------- the child

void put(std::string& out, const void* data, std::size_t size) { out.append(static_cast<const char*>(data), size); }
void put_text(std::string& out, const std::string& text) {
  const uint64_t n = text.size();
  put(out, &n, sizeof n);
  out += text;
}

std::string serialize(const Decoded& d) {
  std::string out = "COZYDCM1";
  for (int64_t v : {d.slices, d.channels, d.rows, d.cols}) put(out, &v, sizeof v);
  put_text(out, d.modality);
  const uint8_t mono1 = d.monochrome1;
  put(out, &mono1, 1);
  put(out, d.spacing.data(), sizeof d.spacing);
  put(out, d.origin.data(), sizeof d.origin);
  put(out, d.orientation.data(), sizeof d.orientation);
  const uint64_t nw = d.windows.size(), nt = d.tags.size(), nf = d.files.size();
  put(out, &nw, sizeof nw);
  for (const auto& [c, w] : d.windows) put(out, &c, sizeof c), put(out, &w, sizeof w);
  put(out, &nt, sizeof nt);
  for (const auto& [k, v] : d.tags) put_text(out, k), put_text(out, v);
  put(out, &nf, sizeof nf);
  for (const auto& f : d.files) put_text(out, f);
  put(out, d.voxels.data(), d.voxels.size() * sizeof(float));
  return out;
}

class Reader {
 public:
  Reader(const std::string& data, const std::string& where) : data_(data), where_(where) {}
  template <class T>
  T get() {
    T v;
    take(&v, sizeof v);
    return v;
  }
  std::string text() {
    const uint64_t n = get<uint64_t>();
    if (n > data_.size() - at_) fail();
    std::string s = data_.substr(at_, n);
    at_ += n;
    return s;
  }
  std::size_t left() const { return data_.size() - at_; }
  void take(void* out, std::size_t n) {
    if (n > data_.size() - at_) fail();
    std::memcpy(out, data_.data() + at_, n);
    at_ += n;
  }

 private:
  [[noreturn]] void fail() { throw Error(where_ + "the decoder's answer is cut short"); }
  const std::string& data_;
  std::string where_;
  std::size_t at_ = 8;  // after the magic
};

Decoded parse_answer(const std::string& data, const std::string& where) {
  Reader in(data, where);
  Decoded d;
  d.slices = in.get<int64_t>(), d.channels = in.get<int64_t>(), d.rows = in.get<int64_t>(), d.cols = in.get<int64_t>();
  if (d.slices < 0 || d.channels < 0 || d.rows < 0 || d.cols < 0) throw Error(where + "the decoder's answer is malformed");
  d.modality = in.text();
  d.monochrome1 = in.get<uint8_t>() != 0;
  in.take(d.spacing.data(), sizeof d.spacing);
  in.take(d.origin.data(), sizeof d.origin);
  in.take(d.orientation.data(), sizeof d.orientation);
  for (uint64_t i = 0, n = in.get<uint64_t>(); i < n; ++i) {
    const double c = in.get<double>(), w = in.get<double>();
    d.windows.emplace_back(c, w);
  }
  for (uint64_t i = 0, n = in.get<uint64_t>(); i < n; ++i) {
    std::string key = in.text();
    d.tags[key] = in.text();
  }
  for (uint64_t i = 0, n = in.get<uint64_t>(); i < n; ++i) d.files.push_back(in.text());
  const uint64_t count = static_cast<uint64_t>(d.slices) * static_cast<uint64_t>(d.channels) *
                         static_cast<uint64_t>(d.rows) * static_cast<uint64_t>(d.cols);
  if (count > (uint64_t{1} << 31) || count * sizeof(float) != in.left()) throw Error(where + "the decoder's answer is malformed");
  d.voxels.resize(static_cast<std::size_t>(count));
  in.take(d.voxels.data(), d.voxels.size() * sizeof(float));
  return d;
}

// Decodes `path` in a child process, giving it `seconds` to answer.
Decoded decode_isolated_impl(const fs::path& path, int seconds) {
  const std::string where = "cannot read " + path.string() + ": ";
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) throw Error(where + "no pipe to the decoder: " + std::strerror(errno));
  const pid_t child = fork();
  if (child < 0) {
    close(pipe_fds[0]), close(pipe_fds[1]);
    throw Error(where + "cannot start the decoder: " + std::strerror(errno));
  }
  if (child == 0) {
    // The child dies of what kills it, without the host's handlers (its
    // Ctrl-C handling, a sanitizer's or fuzzer's crash reports): the parent
    // reports the death.
    for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGINT, SIGTERM}) signal(sig, SIG_DFL);
    close(pipe_fds[0]);
    quiet_gdcm();
    std::string answer;
    int status = 0;
    try {
      answer = serialize(fs::is_directory(path) ? decode_series(path) : decode_file(path));
    } catch (const std::exception& e) {
      answer = std::string("COZYERR1") + e.what();
      status = 3;
    } catch (...) {
      answer = "COZYERR1" + where + "the decoder threw";
      status = 3;
    }
    for (std::size_t sent = 0; sent < answer.size();) {
      const ssize_t n = write(pipe_fds[1], answer.data() + sent, answer.size() - sent);
      if (n <= 0) _exit(4);
      sent += static_cast<std::size_t>(n);
    }
    _exit(status);
  }
  close(pipe_fds[1]);
  std::string answer;
  char buffer[1 << 16];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  bool timed_out = false;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd fd{pipe_fds[0], POLLIN, 0};
    const int ready = poll(&fd, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    const ssize_t n = read(pipe_fds[0], buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    answer.append(buffer, static_cast<std::size_t>(n));
  }
  close(pipe_fds[0]);
  if (timed_out) kill(child, SIGKILL);
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) throw Error(where + "the decoder took more than " + std::to_string(seconds) + " s");
  if (WIFSIGNALED(status))
    throw Error(where + "the DICOM decoder crashed on it (" + std::string(strsignal(WTERMSIG(status))) + ")");
  if (answer.rfind("COZYERR1", 0) == 0) throw Error(answer.substr(8));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || answer.rfind("COZYDCM1", 0) != 0)
    throw Error(where + "the decoder stopped without an answer (exit status " +
                std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")");
  return parse_answer(answer, where);
}

}  // namespace

void quiet_gdcm() {
  gdcm::Trace::SetWarning(false);
  gdcm::Trace::SetError(false);
  gdcm::Trace::SetDebug(false);
}

Decoded decode_isolated(const fs::path& path, int seconds) {
  if (!fs::exists(path)) throw Error("cannot read " + path.string() + ": no such file or folder");
  return decode_isolated_impl(path, seconds);
}

}  // namespace cozy::medical
