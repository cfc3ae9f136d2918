defmodule Mix.Tasks.Compile.TmsEngine do
  @moduledoc false
  # Builds the Rust engine with cargo (release profile) and copies the
  # library to priv/native/. A no-op when nothing under native/ is newer
  # than the copy. The project has no hex dependencies, rustler's hex
  # package included: the crate is built directly.
  use Mix.Task.Compiler

  @crate "native/tms_engine"
  @target "priv/native/tms_engine.so"

  @impl true
  def run(_args) do
    if stale?() do
      build!()
      {:ok, []}
    else
      {:noop, []}
    end
  end

  defp stale? do
    case File.stat(@target, time: :posix) do
      {:ok, %{mtime: built}} ->
        [Path.join(@crate, "Cargo.toml"), Path.join(@crate, "Cargo.lock")]
        |> Kernel.++(Path.wildcard(Path.join(@crate, "src/**/*.rs")))
        |> Enum.any?(fn source ->
          match?({:ok, %{mtime: changed}} when changed > built, File.stat(source, time: :posix))
        end)

      {:error, _} ->
        true
    end
  end

  defp build! do
    Mix.shell().info("Compiling native/tms_engine (cargo build --release)")

    case System.cmd("cargo", ["build", "--release", "--quiet"],
           cd: @crate,
           stderr_to_stdout: true,
           into: IO.stream(:stdio, :line)
         ) do
      {_, 0} -> :ok
      {_, status} -> Mix.raise("cargo build failed with status #{status}")
    end

    library =
      case :os.type() do
        {:unix, :darwin} -> "libtms_engine.dylib"
        _ -> "libtms_engine.so"
      end

    File.mkdir_p!(Path.dirname(@target))
    # Remove first: overwriting a loaded .so in place can crash a running VM.
    File.rm(@target)
    File.cp!(Path.join([@crate, "target/release", library]), @target)
    # Link priv/ into _build now: the Elixir compiler that runs next loads
    # Tms.Native, whose @on_load needs the library.
    Mix.Project.build_structure()
  end
end

defmodule Tms.MixProject do
  use Mix.Project

  def project do
    [
      app: :tms,
      version: "0.1.0",
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      compilers: [:tms_engine] ++ Mix.compilers(),
      elixirc_paths: elixirc_paths(Mix.env()),
      deps: [],
      docs: [main: "Tms"]
    ]
  end

  def application do
    [extra_applications: [:logger, :inets]]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
