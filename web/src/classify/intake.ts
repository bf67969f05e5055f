/**
 * The three ways images come in: the file picker (several at once), drag and drop anywhere on
 * the page, and paste. Every file is passed on, images or not: the hub's answer is what tells
 * the user why a file was refused.
 */
export interface IntakeElements {
  dropzone: HTMLElement;
  picker: HTMLButtonElement;
  input: HTMLInputElement;
}

export function acceptFiles({ dropzone, picker, input }: IntakeElements, onFiles: (files: File[]) => void): void {
  picker.addEventListener('click', () => input.click());
  input.addEventListener('change', () => {
    const files = Array.from(input.files ?? []);
    input.value = ''; // choosing the same file again must fire change again
    if (files.length > 0) onFiles(files);
  });

  // Dragging over any part of the page counts; the drop zone lights up meanwhile.
  let depth = 0;
  const carriesFiles = (event: DragEvent) => event.dataTransfer?.types.includes('Files') ?? false;
  document.addEventListener('dragenter', (event) => {
    if (!carriesFiles(event)) return;
    depth++;
    dropzone.dataset.dragging = 'true';
  });
  document.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) dropzone.dataset.dragging = 'false';
  });
  document.addEventListener('dragover', (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    if (event.dataTransfer) event.dataTransfer.dropEffect = 'copy';
  });
  document.addEventListener('drop', (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    depth = 0;
    dropzone.dataset.dragging = 'false';
    const files = Array.from(event.dataTransfer?.files ?? []);
    if (files.length > 0) onFiles(files);
  });

  document.addEventListener('paste', (event) => {
    const files = Array.from(event.clipboardData?.files ?? []);
    if (files.length === 0) return;
    event.preventDefault();
    onFiles(files.map((file, i) => (file.name && file.name !== 'image.png' ? file : renamePasted(file, i))));
  });
}

function renamePasted(file: File, index: number): File {
  const extension = file.type.split('/')[1] ?? 'png';
  const stamp = new Date().toTimeString().slice(0, 8).replaceAll(':', '');
  return new File([file], `pasted-${stamp}${index > 0 ? `-${index + 1}` : ''}.${extension}`, { type: file.type });
}
