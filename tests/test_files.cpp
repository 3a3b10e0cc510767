#include <cozy/files.hpp>

#include <gtest/gtest.h>

#include <fstream>

namespace cozy {
namespace {

namespace fs = std::filesystem;

std::string read(const fs::path& file) {
  std::ifstream in(file);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(WriteNewFile, AFailedWriteLeavesNothing) {
  fs::path dir = fresh_dir("cozy_files_fail");
  EXPECT_THROW(write_new_file(dir / "out.png",
                              [](const fs::path& temp) {
                                std::ofstream(temp) << "half";
                                throw Error("disk full");
                              }),
               Error);
  EXPECT_TRUE(fs::is_empty(dir)) << "neither the file nor its temporary remains";
}

TEST(WriteNewFile, NeverReplacesAnExistingFile) {
  fs::path dir = fresh_dir("cozy_files_exists");
  std::ofstream(dir / "out.txt") << "first";
  bool written = write_new_file(dir / "out.txt", [](const fs::path& temp) { std::ofstream(temp) << "second"; });
  EXPECT_FALSE(written);
  EXPECT_EQ(read(dir / "out.txt"), "first");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
}

TEST(WriteNewFile, TheWriterSeesATemporaryNameWithTheSameExtension) {
  fs::path dir = fresh_dir("cozy_files_ext");
  fs::path seen;
  ASSERT_TRUE(write_new_file(dir / "img.png", [&](const fs::path& temp) {
    seen = temp;
    std::ofstream(temp) << "png";
  }));
  EXPECT_EQ(seen.extension(), ".png");
  EXPECT_NE(seen.filename(), "img.png");
  EXPECT_EQ(seen.parent_path(), dir);
  EXPECT_EQ(read(dir / "img.png"), "png");
  EXPECT_FALSE(fs::exists(seen));
}

TEST(WriteNumberedFile, CountsAboveTheHighestExistingNumber) {
  fs::path dir = fresh_dir("cozy_files_numbered");
  std::ofstream(dir / "x_00003.png") << "old";
  std::ofstream(dir / "x_abc.png") << "ignored";
  std::ofstream(dir / "y_00009.png") << "another prefix";
  auto writer = [](const fs::path& temp) { std::ofstream(temp) << "new"; };
  EXPECT_EQ(write_numbered_file(dir, "x", ".png", writer), dir / "x_00004.png");
  EXPECT_EQ(write_numbered_file(dir, "x", ".png", writer), dir / "x_00005.png");
  EXPECT_EQ(write_numbered_file(dir, "z", ".png", writer), dir / "z_00001.png");
  EXPECT_EQ(read(dir / "x_00003.png"), "old");
}

TEST(PathInside, RefusesPathsThatLeaveTheFolder) {
  fs::path root = "/data/out";
  EXPECT_EQ(path_inside(root, "a/b", "prefix"), fs::path("/data/out/a/b"));
  EXPECT_EQ(path_inside(root, "a/../b", "prefix"), fs::path("/data/out/b"));
  try {
    path_inside(root, "../x", "prefix");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "prefix '../x' escapes the folder /data/out");
  }
  try {
    path_inside(root, "/etc/x", "prefix");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "prefix '/etc/x' must be relative to /data/out");
  }
  try {
    path_inside(root, "", "prefix");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "prefix is empty");
  }
  EXPECT_THROW(path_inside(root, "a/..", "prefix"), Error);  // the folder itself is no file name
}

}  // namespace
}  // namespace cozy
