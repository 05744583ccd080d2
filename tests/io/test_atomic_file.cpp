// Atomic files and folders: commit renames into place, an abandoned write leaves nothing, and a
// crash mid-write (a real child process killed before commit) leaves the final path untouched.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "support/test_support.h"

namespace qlora::io {
namespace {

namespace fs = std::filesystem;

std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::set<std::string> files_in(const std::string& dir) {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
    return out;
}

TEST(AtomicFile, WritesAndReplacesWithoutLeavingTempFiles) {
    std::string dir = qlora::test::scratch_dir("atomic_file");
    write_file_atomic(dir + "/a.json", "{\"v\": 1}");
    EXPECT_EQ(read_text(dir + "/a.json"), "{\"v\": 1}");
    write_file_atomic(dir + "/a.json", "second");
    EXPECT_EQ(read_text(dir + "/a.json"), "second");
    write_file_atomic(dir + "/empty", "");
    EXPECT_EQ(fs::file_size(dir + "/empty"), 0u);
    EXPECT_EQ(files_in(dir), (std::set<std::string>{"a.json", "empty"}));
}

TEST(AtomicFile, CreatesMissingParentFolders) {
    std::string dir = qlora::test::scratch_dir("atomic_file_parents");
    write_file_atomic(dir + "/x/y/z.txt", "deep");
    EXPECT_EQ(read_text(dir + "/x/y/z.txt"), "deep");
}

TEST(AtomicFile, AbandonedWriterLeavesNeitherFileNorTemp) {
    std::string dir = qlora::test::scratch_dir("atomic_file_abandon");
    write_file_atomic(dir + "/keep.txt", "old");
    {
        AtomicFileWriter writer(dir + "/keep.txt");
        writer.write("new, never committed");
        EXPECT_TRUE(fs::exists(writer.temp_path()));
        EXPECT_EQ(fs::path(writer.temp_path()).parent_path(), fs::path(dir));
    }
    EXPECT_EQ(read_text(dir + "/keep.txt"), "old");
    EXPECT_EQ(files_in(dir), (std::set<std::string>{"keep.txt"}));
}

TEST(AtomicFile, WriterCountsBytesAndRejectsDoubleCommit) {
    std::string dir = qlora::test::scratch_dir("atomic_file_count");
    AtomicFileWriter writer(dir + "/f.bin");
    writer.write("abc");
    writer.write(std::string(1000, 'x'));
    EXPECT_EQ(writer.bytes_written(), 1003u);
    writer.commit();
    EXPECT_EQ(fs::file_size(dir + "/f.bin"), 1003u);
    EXPECT_THROW(writer.commit(), Error);
    EXPECT_THROW(writer.write("late"), Error);
}

TEST(AtomicFile, UnwritableTargetNamesThePath) {
    std::string dir = qlora::test::scratch_dir("atomic_file_unwritable");
    std::ofstream(dir + "/blocker") << "a file where a folder is needed";
    try {
        write_file_atomic(dir + "/blocker/sub.txt", "x");
        FAIL() << "no throw";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(dir + "/blocker/sub.txt"), std::string::npos)
            << e.what();
        EXPECT_EQ(e.code(), ExitCode::kRuntime);
    }
}

TEST(AtomicFile, FsyncPathReportsMissingPath) {
    std::string dir = qlora::test::scratch_dir("atomic_fsync");
    EXPECT_NO_THROW(fsync_path(dir));
    write_file_atomic(dir + "/f", "x");
    EXPECT_NO_THROW(fsync_path(dir + "/f"));
    try {
        fsync_path(dir + "/missing");
        FAIL() << "no throw";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(dir + "/missing"), std::string::npos) << e.what();
    }
}

TEST(AtomicFile, RemoveTreeRemovesNestedFoldersButNotLinkTargets) {
    std::string dir = qlora::test::scratch_dir("atomic_remove_tree");
    write_file_atomic(dir + "/outside/keep.txt", "kept");
    write_file_atomic(dir + "/tree/a/b/c.txt", "x");
    write_file_atomic(dir + "/tree/top.txt", "y");
    fs::create_directory_symlink(dir + "/outside", dir + "/tree/a/link");
    remove_tree(dir + "/tree");
    EXPECT_FALSE(fs::exists(dir + "/tree"));
    EXPECT_EQ(read_text(dir + "/outside/keep.txt"), "kept");
    EXPECT_NO_THROW(remove_tree(dir + "/tree"));  // already gone: fine
    remove_tree(dir + "/outside/keep.txt");       // a plain file
    EXPECT_TRUE(fs::is_empty(dir + "/outside"));
}

TEST(AtomicDir, CommitRenamesIntoPlace) {
    std::string root = qlora::test::scratch_dir("atomic_dir_commit");
    std::string final_path = root + "/step-10";
    AtomicDir dir(final_path);
    EXPECT_EQ(dir.path(), final_path + ".tmp-" + std::to_string(::getpid()));
    EXPECT_TRUE(fs::is_directory(dir.path()));
    write_file_atomic(dir.path() + "/adapter_config.json", "{}");
    save_safetensors(dir.path() + "/adapter_model.safetensors", {{"a", at::ones({2})}});
    fs::create_directories(dir.path() + "/nested");
    std::ofstream(dir.path() + "/nested/plain.txt") << "written without fsync by the caller";
    EXPECT_FALSE(fs::exists(final_path));
    dir.commit();
    EXPECT_TRUE(dir.committed());
    EXPECT_EQ(files_in(root), (std::set<std::string>{"step-10"}));
    EXPECT_EQ(files_in(final_path), (std::set<std::string>{"adapter_config.json",
                                                           "adapter_model.safetensors", "nested"}));
    EXPECT_TRUE(SafetensorsReader(final_path + "/adapter_model.safetensors").contains("a"));
    EXPECT_THROW(dir.commit(), Error);
}

TEST(AtomicDir, UncommittedLeavesNoFolder) {
    std::string root = qlora::test::scratch_dir("atomic_dir_abandon");
    {
        AtomicDir dir(root + "/out/");  // a trailing slash names the same folder
        write_file_atomic(dir.path() + "/partial.bin", "half");
        EXPECT_EQ(fs::path(dir.path()).parent_path(), fs::path(root));
    }
    EXPECT_TRUE(fs::is_empty(root));
}

TEST(AtomicDir, ExistingFolderNeedsOverwrite) {
    std::string root = qlora::test::scratch_dir("atomic_dir_exists");
    fs::create_directories(root + "/out");
    try {
        AtomicDir dir(root + "/out");
        FAIL() << "no throw";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(root + "/out already exists"), std::string::npos)
            << e.what();
    }
    EXPECT_EQ(files_in(root), (std::set<std::string>{"out"}));
}

TEST(AtomicDir, OverwriteReplacesTheWholeFolder) {
    std::string root = qlora::test::scratch_dir("atomic_dir_overwrite");
    write_file_atomic(root + "/adapter/old_only.txt", "old");
    write_file_atomic(root + "/adapter/shared.txt", "old");
    AtomicDir dir(root + "/adapter", /*overwrite=*/true);
    write_file_atomic(dir.path() + "/shared.txt", "new");
    EXPECT_EQ(read_text(root + "/adapter/shared.txt"), "old");  // untouched until commit
    dir.commit();
    EXPECT_EQ(files_in(root), (std::set<std::string>{"adapter"}));
    EXPECT_EQ(files_in(root + "/adapter"), (std::set<std::string>{"shared.txt"}));
    EXPECT_EQ(read_text(root + "/adapter/shared.txt"), "new");
}

TEST(AtomicDir, MovedFromDoesNotRemoveTheFolder) {
    std::string root = qlora::test::scratch_dir("atomic_dir_move");
    AtomicDir first(root + "/ckpt");
    AtomicDir second(std::move(first));
    EXPECT_TRUE(fs::is_directory(second.path()));
    write_file_atomic(second.path() + "/f", "x");
    second.commit();
    EXPECT_EQ(read_text(root + "/ckpt/f"), "x");
}

// A child process starts a checkpoint and dies before commit(): no destructor runs, as in a crash.
TEST(AtomicDir, CrashBeforeCommitLeavesFinalPathIntact) {
    std::string root = qlora::test::scratch_dir("atomic_dir_crash");
    write_file_atomic(root + "/step-1/DONE", "complete");
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        AtomicDir replacement(root + "/step-1", /*overwrite=*/true);
        std::ofstream(replacement.path() + "/DONE") << "half-written";
        AtomicDir fresh(root + "/step-2");
        std::ofstream(fresh.path() + "/partial") << "half-written";
        ::_exit(3);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3);
    std::string suffix = ".tmp-" + std::to_string(child);
    EXPECT_EQ(files_in(root),
              (std::set<std::string>{"step-1", "step-1" + suffix, "step-2" + suffix}));
    EXPECT_EQ(read_text(root + "/step-1/DONE"), "complete");
    EXPECT_FALSE(fs::exists(root + "/step-2"));

    // The leftovers do not block a later, complete write of the same checkpoint.
    AtomicDir retry(root + "/step-2");
    write_file_atomic(retry.path() + "/DONE", "complete");
    retry.commit();
    EXPECT_EQ(files_in(root + "/step-2"), (std::set<std::string>{"DONE"}));
}

}  // namespace
}  // namespace qlora::io
