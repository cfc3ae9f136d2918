defmodule Tms.Bench.Victoria do
  @moduledoc false
  # Debian's VictoriaMetrics for side-by-side benchmarks: installed when
  # missing, run on 127.0.0.1 with a data directory of its own, reached over
  # :httpc with keep-alive, and stopped by its OS pid.

  def ensure_installed! do
    unless System.find_executable("victoria-metrics") do
      root? = System.cmd("id", ["-u"]) |> elem(0) |> String.trim() == "0"
      {cmd, args} = if root?, do: {"apt-get", []}, else: {"sudo", ["apt-get"]}
      {_, 0} = System.cmd(cmd, args ++ ["install", "-y", "-qq", "victoria-metrics"], stderr_to_stdout: true)
    end
  end

  @doc """
  Starts a server on `port` over an empty `dir` (with `extra_args` of its
  command line); waits until it answers.
  """
  def start!(dir, port, extra_args \\ []) do
    ensure_installed!()
    {:ok, _} = Application.ensure_all_started(:inets)
    File.rm_rf!(dir)
    url = "http://127.0.0.1:#{port}"
    # Another server on the port would answer for ours: refuse to start then.
    {:error, _} = :httpc.request(String.to_charlist(url <> "/health"))

    port_ref =
      Port.open({:spawn_executable, System.find_executable("victoria-metrics")}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        args:
          [
            "-storageDataPath=#{dir}",
            "-httpListenAddr=127.0.0.1:#{port}",
            "-retentionPeriod=100y",
            "-loggerLevel=ERROR"
          ] ++ extra_args
      ])

    {:os_pid, pid} = Port.info(port_ref, :os_pid)

    Stream.repeatedly(fn -> Process.sleep(100) && :httpc.request(String.to_charlist(url <> "/health")) end)
    |> Enum.find(&match?({:ok, {{_, 200, _}, _, _}}, &1))

    %{url: url, pid: pid, port: port_ref, dir: dir}
  end

  @doc """
  Stops the server and waits for it to exit: on SIGTERM VictoriaMetrics
  flushes what it buffered, which must not overlap what runs next.
  """
  def stop(vm) do
    Port.close(vm.port)
    System.cmd("sh", ["-c", "kill #{vm.pid}"])
    wait_exit(vm.pid, 600)
  end

  defp wait_exit(_pid, 0), do: raise("VictoriaMetrics did not exit within 60 s")

  defp wait_exit(pid, tries) do
    # Gone, or a zombie its parent has yet to reap: either way, done.
    case File.read("/proc/#{pid}/stat") do
      {:ok, stat} ->
        if stat |> String.split(") ") |> List.last() |> String.starts_with?("Z") do
          :ok
        else
          Process.sleep(100)
          wait_exit(pid, tries - 1)
        end

      {:error, _} ->
        :ok
    end
  end

  def get(vm, path) do
    {:ok, {{_, status, _}, _, body}} =
      :httpc.request(:get, {String.to_charlist(vm.url <> path), []}, [], body_format: :binary)

    {status, body}
  end

  def post(vm, path, body, content_type \\ ~c"text/plain") do
    {:ok, {{_, status, _}, _, _}} =
      :httpc.request(:post, {String.to_charlist(vm.url <> path), [], content_type, body}, [],
        body_format: :binary
      )

    status
  end

  @doc "CPU milliseconds the server has used (user + system)."
  def cpu_ms(vm) do
    [utime, stime] =
      File.read!("/proc/#{vm.pid}/stat")
      |> String.split(" ")
      |> Enum.slice(13, 2)
      |> Enum.map(&String.to_integer/1)

    (utime + stime) * 10
  end

  @doc "Flushes and merges everything, then waits until the data directory stops changing."
  def force_merge(vm, du) do
    true = post(vm, "/internal/force_flush", "") in 200..299
    {200, _} = get(vm, "/internal/force_merge")

    Stream.repeatedly(fn -> Process.sleep(2_000) && du.(vm.dir) end)
    |> Stream.chunk_every(2, 1)
    |> Enum.find(fn [a, b] -> a == b end)

    :ok
  end
end
