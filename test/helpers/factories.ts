/** Valid create bodies, overridable per test (`validImageTask({ element_name: 'x' })`). */

export const IMAGE_A = 'https://media.example.com/frontal.png';
export const IMAGE_B = 'https://media.example.com/side.png';
export const VIDEO = 'https://media.example.com/person.mp4';

export function validImageTask(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    element_name: 'Hero',
    element_description: 'A brave hero',
    reference_type: 'image_refer',
    element_image_list: { frontal_image: IMAGE_A, refer_images: [{ image_url: IMAGE_B }] },
    ...overrides,
  };
}

export function validVideoTask(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    element_name: 'Presenter',
    element_description: 'A presenter filmed face on',
    reference_type: 'video_refer',
    element_video_list: { refer_videos: [{ video_url: VIDEO }] },
    ...overrides,
  };
}

let externalCounter = 0;
export const uniqueExternalId = (label = 'order'): string => `${label}-${process.pid}-${Date.now()}-${++externalCounter}`;
